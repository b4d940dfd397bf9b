"""`wh`: import, generate, query, migrate, demo (+ cli/stream.py: broker, feed, ingest, status; cli/bench.py). Errors print `Error: …` and exit 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from warehouse.cli.common import (
    WarehouseGroup,
    clip,
    console,
    err,
    fail,
    guarded,
    output_file,
    parse_pairs,
    print_error,
    progress_bar,
)
from warehouse.config import get_settings
from warehouse.errors import WarehouseError
from warehouse.ingest.decode import Mapping
from warehouse.ingest.files import (
    detect_parquet_kind,
    detect_tardis_kind,
    expand_paths,
    identity_mapping,
    iter_csv,
    iter_parquet,
    parquet_columns,
    tardis_mapping,
)
from warehouse.pipeline import ImportReport, run_import
from warehouse.records import Kind, SourceBatch
from warehouse.sanitize import RULES, Policy, SanitizeConfig

app = typer.Typer(help="wh — market-data warehouse: ticks in, sanitized, stored, analysed in SQL.", cls=WarehouseGroup,
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)  # fmt: skip
bench_app = typer.Typer(help="Benchmarks that print ratios against a ceiling measured in the same run.")
app.add_typer(bench_app, name="bench")


@app.callback()
def _check_settings() -> None:
    """Bad WH_* settings end every command with one redacted `Error:` line (no traceback,
    no secret: see warehouse/config.py) before it starts."""
    guarded(get_settings)


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

def _policies(items: list[str]) -> dict[str, Policy]:
    out: dict[str, Policy] = {}
    for item in items:
        rule, _, pol = item.partition("=")
        if rule not in RULES or pol not in ("reject", "raise"):
            raise fail(f"--policy {item!r}: use RULE=reject|raise with RULE one of {', '.join(RULES)}")
        out[rule] = Policy(pol)
    return out


def _print_report(report: ImportReport) -> None:
    t = Table(title=f"{report.source}", title_justify="left")
    t.add_column("engine")
    t.add_column("rows read", justify="right")
    t.add_column("stored (new)", justify="right")
    t.add_column("already stored", justify="right")
    t.add_column("rejected", justify="right")
    t.add_column("gap events", justify="right")
    for name, counts in report.sinks.items():
        t.add_row(
            name,
            f"{report.rows_read:,}",
            f"{report.stored(name):,}",
            f"{report.already(name):,}",
            f"{report.rows_rejected:,} (new {counts.stored.get('rejects', 0):,})",
            f"{report.gaps:,}",
        )
    console.print(t)
    if report.rejected:
        console.print("rejects by rule: " + ", ".join(f"{k}={v:,}" for k, v in sorted(report.rejected.items())))
    console.print(f"{report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s over {report.seconds:.2f} s")


def _run(batches: Iterator[SourceBatch], source: str, total: int, label: str, engines: Sequence[str],
         config: SanitizeConfig) -> ImportReport:  # fmt: skip
    from warehouse.sinks import open_sinks

    settings = get_settings()
    sinks = open_sinks(list(engines), settings)
    try:
        with progress_bar() as progress:
            task = progress.add_task(label, total=total, rows=0)

            def tick(batch: SourceBatch, report: ImportReport) -> None:
                progress.update(task, completed=batch.progress, rows=report.rows_read)

            report = run_import(batches, source=source, sinks=sinks, config=config, on_progress=tick)
            progress.update(task, completed=total)
    finally:
        for s in sinks:
            s.close()
    return report


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(None, help="Files to import (CSV, .csv.gz/.csv.zst, Parquet); a directory imports "
                                                  "its files of the --format (default with --pipeline: the spec's files)"),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p",
                                        help="pipeline spec (pipelines/NAME.yaml, or a path) giving the format, mapping, "
                                             "rules and sinks; the format options below are then taken from it"),
    fmt: str = typer.Option("tardis", "--format", "-f", help="tardis | csv | parquet"),
    kind: str | None = typer.Option(None, "--kind", help="csv/parquet: quotes | trades (default: quotes; Parquet "
                                                         "without --map: told by its columns)"),
    map_: list[str] = typer.Option([], "--map", help="csv/parquet: FIELD=COLUMN (e.g. --map bid=best_bid)"),
    const: list[str] = typer.Option([], "--const", help="FIELD=VALUE for every row (e.g. --const symbol=BTCUSDT)"),
    ts_unit: str = typer.Option("us", "--ts-unit", help="numeric timestamps: s | ms | us | ns"),
    ts_format: str | None = typer.Option(None, "--ts-format", help="strftime format of textual timestamps"),
    asset_class: str = typer.Option("crypto", "--asset-class", help="tardis: asset class of the file"),
    engine: str | None = typer.Option(None, "--engine", "-e", help="duckdb | clickhouse | all (default: all, or the "
                                                                    "spec's sinks)"),
    policy: list[str] = typer.Option([], "--policy", help="RULE=reject|raise (default reject)"),
) -> None:
    """Import tick files: decode, sanitize, store (idempotent: a second import adds nothing)."""
    from warehouse.ingest.mapping_check import check_mapping
    from warehouse.pipeline.spec import load_spec
    from warehouse.sql.engines import engine_names

    spec = guarded(lambda: load_spec(pipeline or "files"))
    src = spec.source.files
    if src is None:
        raise fail(f"--pipeline {pipeline}: the spec reads Kafka, not files; use `wh ingest --pipeline {pipeline}`")
    if pipeline is not None:  # the spec says how to read
        fmt, kind, ts_unit, ts_format, asset_class = src.format, src.kind, src.ts_unit, src.ts_format, src.asset_class
        map_ = [*(f"{k}={v}" for k, v in src.map.items()), *map_]
        const = [*(f"{k}={v}" for k, v in src.const.items()), *const]
    if not paths:
        if pipeline is None:
            raise fail("give the files to import (or --pipeline NAME to import the files its spec names)")
        paths = src.files(get_settings().home)
        if not paths:
            raise fail(f"--pipeline {pipeline}: no files match {src.path!r} under {get_settings().home}")
    if fmt not in ("tardis", "csv", "parquet"):
        raise fail(f"--format {fmt!r}: use tardis, csv or parquet")
    engines = guarded(lambda: engine_names(engine)) if engine is not None else [str(n) for n in spec.sinks]
    config = spec.sanitize.config()
    config.policies.update(_policies(policy))
    kinds = {"quotes": Kind.QUOTE, "quote": Kind.QUOTE, "trades": Kind.TRADE, "trade": Kind.TRADE}
    if kind is not None and kind not in kinds:
        raise fail(f"--kind {kind!r}: use quotes or trades")
    cols = parse_pairs(map_, "--map")
    consts = parse_pairs(const, "--const")
    if fmt != "tardis":  # the options are checked once, before any file is read
        guarded(lambda: check_mapping(Mapping(kinds.get(kind or "quotes", Kind.QUOTE), cols, consts,
                                              ts_unit=ts_unit, ts_format=ts_format)))  # fmt: skip
    failed = 0
    for path in guarded(lambda: expand_paths(paths, fmt)):
        def one(path: Path = path) -> ImportReport:
            if fmt == "tardis":
                k = detect_tardis_kind(path)
                batches = iter_csv(path, tardis_mapping(k, asset_class))
            else:
                k = kinds[kind or "quotes"]
                if fmt == "parquet" and not cols:
                    names = parquet_columns(path)[0]
                    if kind is None:  # wh generate --out writes quotes.parquet and trades.parquet
                        k = detect_parquet_kind(names, str(path))
                    m = identity_mapping(k, names)
                    m.constants.update(consts)
                else:
                    m = Mapping(k, cols, consts, ts_unit=ts_unit, ts_format=ts_format)
                batches = iter_csv(path, m) if fmt == "csv" else iter_parquet(path, m)
            return _run(batches, str(path.resolve()), path.stat().st_size, path.name, engines, config)

        try:
            _print_report(one())
        except WarehouseError as exc:
            print_error(exc)
            failed += 1
    if failed:
        raise typer.Exit(1)


@app.command()
def generate(
    instruments: int = typer.Option(165, "--instruments", "-n", help="number of instruments (6 … 165)"),
    ticks: int = typer.Option(1_000_000, "--ticks", "-t", min=1, help="ticks to generate (quotes + trades)"),
    seed: int = typer.Option(1, "--seed", "-s"),
    start: str = typer.Option("2024-01-02", "--start", help="UTC start (ISO date/time)"),
    days: float = typer.Option(1.0, "--days", help="time span of the feed"),
    trade_ratio: float = typer.Option(0.2, "--trade-ratio", min=0.0, max=1.0, help="share of ticks that are trades"),
    bad_rate: float = typer.Option(0.0, "--bad-rate", min=0.0, max=1.0, help="share of bad ticks (NaN, ≤0, crossed, …)"),
    dup_rate: float = typer.Option(0.0, "--dup-rate", min=0.0, max=1.0, help="share of ticks delivered twice"),
    ooo_rate: float = typer.Option(0.0, "--ooo-rate", min=0.0, max=1.0, help="share of ticks with out-of-order event time"),
    gap_rate: float = typer.Option(0.0, "--gap-rate", min=0.0, max=1.0, help="share of ticks after a sequence gap"),
    out: Path | None = typer.Option(None, "--out", help="write Parquet files into this directory instead"),
    engine: str = typer.Option("all", "--engine", "-e", help="duckdb | clickhouse | all"),
) -> None:
    """Generate the synthetic multi-asset feed into the warehouse (or Parquet with --out)."""
    from warehouse.ingest.synthetic import FaultRates, SyntheticFeed
    from warehouse.sql.engines import engine_names

    try:
        start_dt = datetime.fromisoformat(start).replace(tzinfo=UTC)
    except ValueError:
        raise fail(f"--start {start!r} is not an ISO date") from None
    feed = SyntheticFeed(instruments=instruments, ticks=ticks, seed=seed, start=start_dt,
                         duration_s=days * 86_400, trade_ratio=trade_ratio,
                         faults=FaultRates(bad_rate, dup_rate, ooo_rate, gap_rate))  # fmt: skip
    if not 1 <= instruments <= 165:
        raise fail("--instruments must be between 1 and 165")
    if out is not None:
        guarded(lambda: write_parquet(feed, out))
        return
    engines = guarded(lambda: engine_names(engine))
    report = guarded(lambda: _run(feed.batches(), feed.source, ticks, f"synthetic seed={seed}",
                                  engines, SanitizeConfig()))  # fmt: skip
    _print_report(report)


def write_parquet(feed: Any, out: Path) -> None:
    import pyarrow.parquet as pq

    from warehouse.pipeline import to_write_batch

    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    import polars as pl

    with progress_bar() as progress:
        task = progress.add_task("generate → parquet", total=feed.ticks, rows=0)
        for batch in feed.batches():
            rows = batch.rows.drop([c for c in batch.rows.columns if c.startswith("_")])
            empty = pl.DataFrame(schema={"_offset": pl.Int64, "rule": pl.String, "reason": pl.String,
                                         "_raw": pl.String, "exchange": pl.String, "symbol": pl.String,
                                         "timestamp": pl.Int64})  # fmt: skip
            gaps = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "from_seq": pl.Int64,
                                        "to_seq": pl.Int64, "missing": pl.Int64, "timestamp": pl.Int64})  # fmt: skip
            table = next(iter(to_write_batch(batch.kind, rows, empty, gaps, feed.source).values()))
            name = "quotes" if batch.kind == Kind.QUOTE else "trades"
            if name not in writers:
                writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema, compression="zstd")
            writers[name].write_table(table)
            counts[name] = counts.get(name, 0) + table.num_rows
            progress.update(task, completed=batch.progress, rows=sum(counts.values()))
    for w in writers.values():
        w.close()
    for name, n in counts.items():
        console.print(f"{out / (name + '.parquet')}: {n:,} rows")


@app.command()
def migrate(engine: str = typer.Option("all", "--engine", "-e", help="duckdb | clickhouse | all")) -> None:
    """Apply ddl/<engine>/NNN_*.sql in order (safe to re-run; refuses edited applied files)."""
    from warehouse.sql.engines import engine_names, open_engine
    from warehouse.sql.migrate import migrate as run

    settings = get_settings()
    for name in guarded(lambda: engine_names(engine)):
        eng = guarded(lambda name=name: open_engine(name, settings))  # type: ignore[misc]
        try:
            applied = guarded(lambda eng=eng: run(eng))  # type: ignore[misc]
        finally:
            eng.close()
        console.print(f"{name}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


FORMATS = ("table", "csv", "json", "parquet")


def check_output(fmt: str, out: Path | None) -> None:
    """Refuse a bad --format or --out before the query runs (missing folders are created)."""
    if fmt not in FORMATS:
        raise fail(f"--format {fmt!r}: use table, csv, json or parquet")
    if out is not None:
        output_file(out)
    elif fmt == "parquet" and sys.stdout.isatty():
        raise fail("--format parquet writes binary: give --out PATH.parquet or redirect stdout")


def _emit(table: pa.Table, fmt: str, title: str, out: Path | None = None) -> None:
    """Print (or write to `out`) a result as a table, CSV, JSON or Parquet."""
    check_output(fmt, out)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, out if out is not None else sys.stdout.buffer, compression="zstd")
        elif out is not None:
            with open(out, "w", encoding="utf-8") as fh:
                _print(table, fmt, title, Console(file=fh, width=200, markup=False, highlight=False, emoji=False))
        else:
            _print(table, fmt, title, console)
    except OSError as exc:
        raise fail(f"--out {str(out)!r}: cannot write: {exc.strerror or exc}") from None
    if out is not None:
        err.print(f"{out}: {table.num_rows:,} rows")


def _print(table: pa.Table, fmt: str, title: str, where: Console) -> None:
    if fmt == "csv":
        import pyarrow.csv as pacsv

        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf)
        where.file.write(buf.getvalue().to_pybytes().decode())
        where.file.flush()
    elif fmt == "json":
        rows = table.to_pylist()
        where.file.write(json.dumps(rows, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)) + "\n")
    else:
        t = Table(title=title, title_justify="left")
        for name in table.column_names:
            t.add_column(name, justify="right" if not pa.types.is_string(table.schema.field(name).type) else "left")
        for row in table.to_pylist():
            t.add_row(*["" if v is None else (f"{v:.6f}" if isinstance(v, float) else clip(str(v))) for v in row.values()])
        where.print(t)


def _list_queries(engine: str | None = None) -> None:
    from warehouse.sql import queries

    for q in guarded(lambda: queries.list_queries(engine)):
        console.print(Text.assemble((q.name, "bold"), f" — {q.description}"))
        if q.params:
            console.print("    " + ", ".join(p.describe() for p in q.params))


@app.command("query")
def query(
    name: str = typer.Argument(None, help="query name (see --list)"),
    args: list[str] = typer.Argument(None, help="values of the query's required parameters, in order (e.g. a symbol)"),
    list_: bool = typer.Option(False, "--list", help="list the named queries and their parameters"),
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse | questdb (queries/questdb/)"),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for any parameter"),
    limit: int | None = typer.Option(None, "--limit", help="rows (newest) to return; 0 = all; default: the query's"),
    window: int | None = typer.Option(None, "--window", help="rolling window in rows (zscore, vwap_rolling)"),
    interval: int | None = typer.Option(None, "--interval", help="bar / point interval in seconds"),
    since: str | None = typer.Option(None, "--since", help="UTC start (ISO), inclusive"),
    until: str | None = typer.Option(None, "--until", help="UTC end (ISO), exclusive"),
    at: str | None = typer.Option(None, "--at", help="UTC time of a leaderboard / allocation (ISO)"),
    exchange: str | None = typer.Option(None, "--exchange", help="venue of the symbol (needed when it trades on several)"),
    fmt: str = typer.Option("table", "--format", help="table | csv | json | parquet"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the result to this file (missing folders are created)"),
) -> None:
    """Run a named query: `wh query zscore BTCUSDT`, `wh query bars ETHUSDT --interval 300`, `wh query --list`."""
    from warehouse import analytics
    from warehouse.sql import queries
    from warehouse.sql.engines import open_engine

    if list_ or name is None:
        _list_queries(engine)
        return
    check_output(fmt, out)
    if engine not in ("duckdb", "clickhouse", "questdb"):
        raise fail(f"--engine {engine!r}: use duckdb, clickhouse or questdb")
    q = guarded(lambda: queries.load(name, engine=engine))
    declared = {p.name for p in q.params}
    required = [p.name for p in q.params if p.default is None]
    positional = list(args or [])
    if len(positional) > len(required):
        raise fail(f"{name} takes {len(required)} positional value(s) ({', '.join(required) or 'none'}); "
                   f"got {len(positional)}: use --param NAME=VALUE for the others")  # fmt: skip
    values: dict[str, Any] = dict(zip(required, positional, strict=False))
    options = {"limit": limit, "window": window, "interval": interval, "since": since, "until": until, "at": at,
               "exchange": exchange}  # fmt: skip
    for key, value in options.items():
        if value is None:
            continue
        if key not in declared:
            raise fail(f"--{key}: {name} has no parameter {key} (it takes {', '.join(sorted(declared)) or 'none'})")
        values[key] = analytics.ALL_ROWS if key == "limit" and value == 0 else value
    values.update(parse_pairs(param, "--param"))
    missing = [p for p in required if p not in values]
    if missing:
        raise fail(f"{name} needs {', '.join(missing)}: wh query {name} {' '.join(m.upper() for m in required)}")
    settings = get_settings()
    eng = guarded(lambda: open_engine(engine, settings, read_only=True))
    try:
        if name == "zscore":
            table = guarded(lambda: analytics.zscore(eng, values.pop("symbol"), **values))
        else:
            table = guarded(lambda: analytics.run(eng, name, **values))
    finally:
        eng.close()
    shown = ", ".join(f"{k}={v}" for k, v in values.items() if k in required)
    _emit(table, fmt, f"{name} {shown} on {engine}".replace("  ", " "), out)


@app.command()
def refresh(
    tables: list[str] = typer.Argument(None, help="bars_1m and/or leaderboard_daily (default: both)"),
    day: list[str] = typer.Option([], "--day", "-d", help="UTC day (YYYY-MM-DD) to rebuild; default: every day with data"),
    engine: str = typer.Option("all", "--engine", "-e", help="duckdb | clickhouse | all"),
) -> None:
    """Rebuild materialized analytics per UTC day (1-minute bars, daily leaderboard); re-running a day replaces it."""
    from datetime import date as date_

    from warehouse.analytics import materialize
    from warehouse.sql.engines import engine_names, open_engine
    from warehouse.sql.migrate import migrate as run_migrations

    names = list(tables or materialize.TARGETS)
    for n in names:
        if n not in materialize.TARGETS:
            raise fail(f"unknown materialized table {n!r}; choose {', '.join(materialize.TARGETS)}")
    try:
        days = [date_.fromisoformat(d) for d in day]
    except ValueError as exc:
        raise fail(f"--day: {exc} (use YYYY-MM-DD)") from None
    settings = get_settings()
    for ename in guarded(lambda: engine_names(engine)):
        eng = guarded(lambda ename=ename: open_engine(ename, settings))  # type: ignore[misc]
        try:
            guarded(lambda eng=eng: run_migrations(eng))  # type: ignore[misc]
            todo = {n: days for n in names} if days else {
                n: d for n, d in guarded(lambda eng=eng: materialize.activity_days(eng)).items() if n in names}  # type: ignore[misc]  # fmt: skip
            with progress_bar() as progress:
                for n, ds in todo.items():
                    task = progress.add_task(f"{ename} {n}", total=len(ds), rows=0)
                    rows = 0
                    for d in ds:
                        rows += guarded(lambda eng=eng, n=n, d=d: materialize.refresh(eng, n, d))  # type: ignore[misc]
                        progress.update(task, advance=1, rows=rows)
                    console.print(f"{ename}: {n}: {len(ds)} day(s) rebuilt, {rows:,} rows")
        finally:
            eng.close()


@app.command()
def demo(
    ticks: int = typer.Option(200_000, "--ticks", help="synthetic ticks when the Tardis samples are absent"),
) -> None:
    """The main job on the embedded default: import real samples (or generate a day), show a z-score."""
    from warehouse import analytics
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.sql.engines import open_engine

    settings = get_settings()
    samples = sorted(SHARED_DATA.glob("tardis_*.csv")) if SHARED_DATA.is_dir() else []
    engines = ["duckdb", "clickhouse"]
    if samples:
        console.print(f"Importing {len(samples)} Tardis sample file(s) from {SHARED_DATA}")
        for path in samples:
            k = guarded(lambda path=path: detect_tardis_kind(path))  # type: ignore[misc]
            report = guarded(lambda path=path, k=k: _run(iter_csv(path, tardis_mapping(k)), str(path.resolve()),  # type: ignore[misc]
                                                         path.stat().st_size, path.name, engines, SanitizeConfig()))  # fmt: skip
            _print_report(report)
        symbol, venue = "BTCUSDT", "binance-futures"
    else:
        console.print(f"No Tardis samples at {SHARED_DATA}: generating a synthetic day ({ticks:,} ticks)")
        feed = SyntheticFeed(ticks=ticks, seed=1)
        report = guarded(lambda: _run(feed.batches(), feed.source, ticks, "synthetic", engines, SanitizeConfig()))
        _print_report(report)
        symbol, venue = "BTCUSDT", "binance"
    for name in engines:
        eng = guarded(lambda name=name: open_engine(name, settings, read_only=True))  # type: ignore[misc]
        try:
            table = guarded(lambda eng=eng: analytics.zscore(eng, symbol, limit=10, exchange=venue))  # type: ignore[misc]
        finally:
            eng.close()
        _emit(table, "table", f"z-score {symbol} on {venue}, newest 10, on {name}")
    console.print(f"DuckDB file:        {settings.duckdb_path.resolve()}")
    console.print(f"ClickHouse:         {settings.clickhouse_where()}")
    console.print(f"Try: wh query zscore {symbol} --exchange {venue} --engine clickhouse --limit 20")


from warehouse.cli import bench as _bench  # noqa: E402  (registers `wh bench …`)

_bench.register(bench_app)
from warehouse.cli import stream as _stream  # noqa: E402  (registers `wh broker|feed|ingest|status`)

_stream.register(app)
from warehouse.cli import analysis as _analysis  # noqa: E402  (registers `wh sql`, `wh plot …`)

_analysis.register(app)
from warehouse.cli import sim as _sim  # noqa: E402  (registers `wh replay`)

_sim.register(app)
_bench.register_ingest(bench_app)
from warehouse.cli import bench_analytics as _bench_analytics  # noqa: E402  (registers `wh bench analytics`)

_bench_analytics.register_analytics(bench_app)
from warehouse.cli import bench_replay as _bench_replay  # noqa: E402  (registers `wh bench replay`)

_bench_replay.register_replay(bench_app)
from warehouse.cli import servers as _servers  # noqa: E402  (registers `wh servers`)

_servers.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # `python -m warehouse.cli.main …`
    main()
