"""`wh`: import, generate, query, migrate, demo, bench. Errors print `Error: …` and exit 1."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from warehouse.config import get_settings
from warehouse.errors import WarehouseError
from warehouse.ingest.decode import Mapping
from warehouse.ingest.files import (
    SourceBatch,
    detect_tardis_kind,
    identity_mapping,
    iter_csv,
    iter_parquet,
    tardis_mapping,
)
from warehouse.pipeline import ImportReport, run_import
from warehouse.records import Kind
from warehouse.sanitize import RULES, Policy, SanitizeConfig

app = typer.Typer(help="wh — market-data warehouse: ticks in, sanitized, stored, analysed in SQL.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)  # fmt: skip
bench_app = typer.Typer(help="Benchmarks that print ratios against a ceiling measured in the same run.")
app.add_typer(bench_app, name="bench")

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(1)


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except WarehouseError as exc:
        raise fail(str(exc).replace("[", "\\[")) from None


def _policies(items: list[str]) -> dict[str, Policy]:
    out: dict[str, Policy] = {}
    for item in items:
        rule, _, pol = item.partition("=")
        if rule not in RULES or pol not in ("reject", "raise"):
            raise fail(f"--policy {item!r}: use RULE=reject|raise with RULE one of {', '.join(RULES)}")
        out[rule] = Policy(pol)
    return out


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise fail(f"{flag} {item!r}: expected FIELD=VALUE")
        out[k.strip()] = v
    return out


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


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
        with _progress() as progress:
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
    paths: list[Path] = typer.Argument(..., help="Files to import (CSV or Parquet)."),
    fmt: str = typer.Option("tardis", "--format", "-f", help="tardis | csv | parquet"),
    kind: str = typer.Option("quotes", "--kind", help="csv/parquet: quotes | trades"),
    map_: list[str] = typer.Option([], "--map", help="csv/parquet: FIELD=COLUMN (e.g. --map bid=best_bid)"),
    const: list[str] = typer.Option([], "--const", help="FIELD=VALUE for every row (e.g. --const symbol=BTCUSDT)"),
    ts_unit: str = typer.Option("us", "--ts-unit", help="numeric timestamps: s | ms | us | ns"),
    ts_format: str | None = typer.Option(None, "--ts-format", help="strftime format of textual timestamps"),
    asset_class: str = typer.Option("crypto", "--asset-class", help="tardis: asset class of the file"),
    engine: str = typer.Option("all", "--engine", "-e", help="duckdb | clickhouse | all"),
    policy: list[str] = typer.Option([], "--policy", help="RULE=reject|raise (default reject)"),
) -> None:
    """Import tick files: decode, sanitize, store (idempotent: a second import adds nothing)."""
    from warehouse.sql.engines import engine_names

    engines = guarded(lambda: engine_names(engine))
    config = SanitizeConfig(policies=_policies(policy))
    failed = 0
    for path in paths:
        def one(path: Path = path) -> ImportReport:
            from warehouse.errors import SourceError

            if not path.is_file():
                raise SourceError("no such file", path=str(path))
            if fmt == "tardis":
                k = detect_tardis_kind(path)
                batches = iter_csv(path, tardis_mapping(k, asset_class))
            elif fmt in ("csv", "parquet"):
                k = Kind.QUOTE if kind.startswith("quote") else Kind.TRADE
                cols = _pairs(map_, "--map")
                consts = _pairs(const, "--const")
                if fmt == "parquet" and not cols:
                    import pyarrow.parquet as pq

                    m = identity_mapping(k, pq.ParquetFile(path).schema_arrow.names)
                    m.constants.update(consts)
                else:
                    m = Mapping(k, cols, consts, ts_unit=ts_unit, ts_format=ts_format)
                batches = iter_csv(path, m) if fmt == "csv" else iter_parquet(path, m)
            else:
                raise fail(f"--format {fmt!r}: use tardis, csv or parquet")
            return _run(batches, str(path.resolve()), path.stat().st_size, path.name, engines, config)

        try:
            _print_report(one())
        except WarehouseError as exc:
            err.print(f"[bold red]Error:[/] {str(exc).replace('[', chr(92) + '[')}")
            failed += 1
    if failed:
        raise typer.Exit(1)


@app.command()
def generate(
    instruments: int = typer.Option(165, "--instruments", "-n", help="number of instruments (6 … 165)"),
    ticks: int = typer.Option(1_000_000, "--ticks", "-t", help="ticks to generate (quotes + trades)"),
    seed: int = typer.Option(1, "--seed", "-s"),
    start: str = typer.Option("2024-01-02", "--start", help="UTC start (ISO date/time)"),
    days: float = typer.Option(1.0, "--days", help="time span of the feed"),
    trade_ratio: float = typer.Option(0.2, "--trade-ratio", help="share of ticks that are trades"),
    bad_rate: float = typer.Option(0.0, "--bad-rate", help="share of bad ticks (NaN, ≤0, crossed, …)"),
    dup_rate: float = typer.Option(0.0, "--dup-rate", help="share of ticks delivered twice"),
    ooo_rate: float = typer.Option(0.0, "--ooo-rate", help="share of ticks with out-of-order event time"),
    gap_rate: float = typer.Option(0.0, "--gap-rate", help="share of ticks after a sequence gap"),
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

    with _progress() as progress:
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


def _emit(table: pa.Table, fmt: str, title: str) -> None:
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        sys.stdout.flush()
    elif fmt == "json":
        rows = table.to_pylist()
        print(json.dumps(rows, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))
    elif fmt == "table":
        t = Table(title=title, title_justify="left")
        for name in table.column_names:
            t.add_column(name, justify="right" if not pa.types.is_string(table.schema.field(name).type) else "left")
        for row in table.to_pylist():
            t.add_row(*["" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v)) for v in row.values()])
        console.print(t)
    else:
        raise fail(f"--format {fmt!r}: use table, csv or json")


@app.command("query")
def query(
    name: str = typer.Argument(None, help="query name (see --list)"),
    symbol: str = typer.Argument(None, help="symbol, for queries that take one"),
    list_: bool = typer.Option(False, "--list", help="list the named queries and their parameters"),
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse"),
    window: int = typer.Option(60, "--window", help="rolling window in rows (zscore)"),
    limit: int = typer.Option(100, "--limit", help="newest rows to return; 0 = all"),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for other queries"),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
) -> None:
    """Run a named query: `wh query zscore BTCUSDT`."""
    from warehouse import analytics
    from warehouse.sql import queries
    from warehouse.sql.engines import open_engine

    if list_ or name is None:
        for q in guarded(queries.list_queries):
            params = ", ".join(f"{p.name}:{p.type}" + (f"={p.default}" if p.default else "") for p in q.params)
            console.print(f"[bold]{q.name}[/]({params}) — {q.description}")
        return
    if engine not in ("duckdb", "clickhouse"):
        raise fail(f"--engine {engine!r}: use duckdb or clickhouse")
    settings = get_settings()
    eng = guarded(lambda: open_engine(engine, settings, read_only=True))
    try:
        if name == "zscore":
            if symbol is None:
                raise fail("zscore needs a SYMBOL: wh query zscore BTCUSDT")
            table = guarded(lambda: analytics.zscore(eng, symbol, window=window, limit=limit or None))
            title = f"z-score {symbol} (window {window}, newest first) on {engine}"
        else:
            values: dict[str, Any] = _pairs(param, "--param")
            if symbol is not None:
                values["symbol"] = symbol
            if "limit" in {p.name for p in guarded(lambda: queries.load(name)).params}:
                values.setdefault("limit", limit or analytics.ALL_ROWS)
            table = guarded(lambda: analytics.run(eng, name, **values))
            title = f"{name} on {engine}"
    finally:
        eng.close()
    _emit(table, fmt, title)


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
        symbol = "BTCUSDT"
    else:
        console.print(f"No Tardis samples at {SHARED_DATA}: generating a synthetic day ({ticks:,} ticks)")
        feed = SyntheticFeed(ticks=ticks, seed=1)
        report = guarded(lambda: _run(feed.batches(), feed.source, ticks, "synthetic", engines, SanitizeConfig()))
        _print_report(report)
        symbol = "BTCUSDT"
    for name in engines:
        eng = guarded(lambda name=name: open_engine(name, settings, read_only=True))  # type: ignore[misc]
        try:
            table = guarded(lambda eng=eng: analytics.zscore(eng, symbol, limit=10))  # type: ignore[misc]
        finally:
            eng.close()
        _emit(table, "table", f"z-score {symbol}, newest 10, on {name}")
    console.print(f"DuckDB file:        {settings.duckdb_path.resolve()}")
    console.print(f"ClickHouse:         {settings.clickhouse_where()}")
    console.print(f"Try: wh query zscore {symbol} --engine clickhouse --limit 20")


@app.command()
def broker(
    port: int | None = typer.Option(None, "--port", help="also accept clients on this port (forwarded)"),
) -> None:
    """Run an embedded Kafka-protocol broker (librdkafka's mock cluster) until Ctrl-C/SIGTERM.

    The first line printed is `bootstrap=HOST:PORT`; the address is also written to
    $WH_HOME/broker.addr so `wh feed` and `wh ingest` find it without configuration.
    """
    from warehouse.ingest.kafka import MockBroker, PortForwarder, stop_signals

    settings = get_settings()
    mock = MockBroker()
    forward = None
    address = mock.bootstrap
    if port is not None:
        try:
            forward = PortForwarder(port, mock.bootstrap)
        except OSError as exc:
            raise fail(f"--port {port}: {exc}") from None
        address = f"127.0.0.1:{port}"
    print(f"bootstrap={address}", flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.broker_file.write_text(address + "\n")
    err.print("embedded broker (librdkafka mock cluster): keeps ~5 MB per partition, topics auto-created "
              "with 4 partitions; Ctrl-C stops it")  # fmt: skip
    with stop_signals() as stop:
        while not stop.wait(0.5):
            pass
    if settings.broker_file.is_file() and settings.broker_file.read_text().strip() == address:
        settings.broker_file.unlink()
    if forward is not None:
        forward.close()
    mock.close()


@app.command()
def feed(
    source: str = typer.Option("synthetic", "--source", help="synthetic, or a Tardis CSV / wh Parquet file"),
    count: int = typer.Option(100_000, "--count", "-n", help="ticks to publish (synthetic)"),
    rate: float | None = typer.Option(None, "--rate", help="ticks per second (default: as fast as possible)"),
    topic: str | None = typer.Option(None, "--topic", help="default WH_KAFKA_TOPIC or 'ticks'"),
    seed: int = typer.Option(1, "--seed"),
    bad_rate: float = typer.Option(0.0, "--bad-rate", help="synthetic: share of bad ticks"),
    dup_rate: float = typer.Option(0.0, "--dup-rate", help="synthetic: share of duplicated ticks"),
    ooo_rate: float = typer.Option(0.0, "--ooo-rate", help="synthetic: share of out-of-order ticks"),
    malformed_every: int = typer.Option(0, "--malformed-every", help="also send a malformed message every N ticks"),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help="host:port (default: WH_KAFKA_BOOTSTRAP or `wh broker`)"),
) -> None:
    """Publish ticks to Kafka as JSON (key = symbol), idempotent producer; reports delivery errors."""
    from warehouse.ingest.kafka import bootstrap_servers, produce
    from warehouse.ingest.synthetic import FaultRates, SyntheticFeed

    settings = get_settings()
    addr = guarded(lambda: bootstrap_servers(settings, bootstrap))
    topic = topic or settings.kafka_topic
    batches: Iterator[SourceBatch]
    if source == "synthetic":
        feed_ = SyntheticFeed(ticks=count, seed=seed, chunk=min(count, 100_000) or 1,
                              faults=FaultRates(bad_rate, dup_rate, ooo_rate, 0.0))  # fmt: skip
        batches = feed_.batches()
        total = count
    else:
        path = Path(source)
        if not path.is_file():
            raise fail(f"--source {source!r}: no such file (use 'synthetic' or a path)")
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            kind = Kind.TRADE if "trade_id" in pf.schema_arrow.names else Kind.QUOTE
            batches = iter_parquet(path, identity_mapping(kind, pf.schema_arrow.names))
            total = pf.metadata.num_rows
        else:
            kind = guarded(lambda: detect_tardis_kind(path))
            batches = iter_csv(path, tardis_mapping(kind))
            total = 0
    with _progress() as progress:
        task = progress.add_task(f"feed → {topic}", total=total or None, rows=0)
        report = guarded(lambda: produce(addr, topic, batches, extra_config=settings.kafka_config(), rate=rate,
                                         malformed_every=malformed_every,
                                         on_progress=lambda r: progress.update(task, completed=r.produced, rows=r.produced)))  # fmt: skip
    console.print(f"produced {report.produced:,} messages ({report.malformed:,} malformed on purpose) to "
                  f"{topic} in {report.seconds:.2f} s = {report.produced / max(report.seconds, 1e-9):,.0f} msg/s; "
                  f"delivered {report.delivered:,}, failed {report.failed:,}")  # fmt: skip
    for e, n in report.errors.items():
        err.print(f"delivery error ×{n}: {e}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def ingest(
    topic: str | None = typer.Option(None, "--topic", help="default WH_KAFKA_TOPIC or 'ticks'"),
    group: str | None = typer.Option(None, "--group", help="consumer group (default WH_KAFKA_GROUP or 'wh-ingest')"),
    sinks: str = typer.Option("duckdb,clickhouse", "--sinks", help="comma-separated: duckdb, clickhouse"),
    batch_rows: int | None = typer.Option(None, "--batch-rows", help="flush after this many messages (default 50,000)"),
    batch_seconds: float | None = typer.Option(None, "--batch-seconds", help="... or this many seconds (default 2)"),
    stop_when_idle: float | None = typer.Option(None, "--stop-when-idle", help="exit after this many idle seconds"),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help="host:port (default: WH_KAFKA_BOOTSTRAP or `wh broker`)"),
    instance_id: str | None = typer.Option(None, "--instance-id",
                                           help="static group membership (group.instance.id): a restart takes its "
                                                "partitions back at once instead of after the session timeout"),
    unsafe_commit_first: bool = typer.Option(False, "--debug-commit-before-write", hidden=True,
                                             help="negative control for tests: commit offsets before writing"),
) -> None:
    """Consume ticks from Kafka into the sinks, exactly once; Ctrl-C flushes, commits and exits 0."""
    from warehouse.ingest.consumer import Ingestor, IngestStats
    from warehouse.ingest.kafka import bootstrap_servers, stop_signals
    from warehouse.sinks import open_sinks

    settings = get_settings()
    addr = guarded(lambda: bootstrap_servers(settings, bootstrap))
    names = [s.strip() for s in sinks.split(",") if s.strip()]
    for n in names:
        if n not in ("duckdb", "clickhouse"):
            raise fail(f"--sinks: unknown sink {n!r} (duckdb, clickhouse)")
    # Local mode: serve the embedded ClickHouse over HTTP while ingesting, so `wh query`,
    # `wh sql`, `wh status` (and Dagster) in other processes can read it; DuckDB is opened
    # only for each batch's write, readers wait for the file for up to WH_LOCK_WAIT_SECONDS.
    server = None
    if "clickhouse" in names and not settings.clickhouse_is_server:
        from warehouse.sql.chserver import LocalClickHouseServer
        from warehouse.sql.engines import _local_server, close_embedded

        if _local_server(settings) is None:
            close_embedded()
            server = LocalClickHouseServer(settings.home / "clickhouse-server", data_dir=settings.chdb_path)
            guarded(server.start)
            settings.clickhouse_server_file.write_text(server.url + "\n")
            err.print(f"embedded ClickHouse served at {server.url} while ingesting")
    try:
        opened = guarded(lambda: open_sinks(names, settings, hold_duckdb=False))
    except BaseException:
        _stop_local_server(settings, server)
        raise

    def on_batch(st: IngestStats) -> None:
        stored = ", ".join(f"{k}={v:,}" for k, v in st.stored.items())
        err.print(f"batch {st.batches}: {st.last_batch:,} msgs | total {st.messages:,} ({st.rate:,.0f}/s) | "
                  f"stored {stored} | rejects {st.rejected:,} | lag {st.lag if st.lag is not None else '?'}")  # fmt: skip

    def on_retry(sink: str, attempt: int, delay: float, exc: BaseException) -> None:
        err.print(f"[yellow]{sink} failed (attempt {attempt + 1}): {exc}; consumption paused, retry in {delay:.1f} s[/]")

    ing = Ingestor(opened, bootstrap=addr, topic=topic or settings.kafka_topic, group=group or settings.kafka_group,
                   batch_rows=batch_rows or settings.batch_rows, batch_seconds=batch_seconds or settings.batch_seconds,
                   stop_when_idle=stop_when_idle,
                   kafka_config={**settings.kafka_config(), **({"group.instance.id": instance_id} if instance_id else {})},
                   unsafe_commit_first=unsafe_commit_first,
                   unsafe_delay=float(os.environ.get("WH_DEBUG_DELAY_AFTER_COMMIT", "0")) if unsafe_commit_first else 0.0,
                   on_batch=on_batch, on_retry=on_retry, plan_dir=settings.home / "ingest")  # fmt: skip
    try:
        with stop_signals() as stop:
            stats = guarded(lambda: ing.run(stop))
    finally:
        for s in opened:
            s.close()
        _stop_local_server(settings, server)
    console.print(f"ingested {stats.messages:,} messages in {stats.batches:,} batches; "
                  + ", ".join(f"{k}: {v:,} new ticks" for k, v in stats.stored.items())
                  + f"; {stats.rejected:,} rejects")  # fmt: skip


def _stop_local_server(settings: Any, server: Any) -> None:
    if server is None:
        return
    if settings.clickhouse_server_file.is_file():
        settings.clickhouse_server_file.unlink()
    server.stop()


@app.command()
def status(
    group: str | None = typer.Option(None, "--group"),
    topic: str | None = typer.Option(None, "--topic"),
) -> None:
    """Row counts per sink and table, and the stream offsets each sink holds."""
    from warehouse.sql.engines import open_engine

    settings = get_settings()
    group = group or settings.kafka_group
    topic = topic or settings.kafka_topic
    t = Table(title="warehouse", title_justify="left")
    t.add_column("engine")
    for name in ("market_ticks", "trades", "rejects", "gaps"):
        t.add_column(name, justify="right")
    offsets_line = []
    for engine in ("duckdb", "clickhouse"):
        try:
            eng = open_engine(engine, settings, read_only=True)
        except WarehouseError as exc:
            t.add_row(engine, *["?"] * 4)
            err.print(f"{engine}: {exc}")
            continue
        try:
            from warehouse.sql import queries

            try:
                row = queries.load("table_counts", internal=True).run(eng, {}).to_pylist()[0]
                t.add_row(engine, *[f"{row[name]:,}" for name in ("market_ticks", "trades", "rejects", "gaps")])
            except WarehouseError:
                t.add_row(engine, *["-"] * 4)  # no tables yet
            if engine == "duckdb":
                try:
                    rows = queries.load("kafka_offsets", internal=True).run(eng, {"group_id": group, "topic": topic})
                    offsets_line = [f"{r['partition']}:{r['next_offset']:,}" for r in rows.to_pylist()]
                except WarehouseError:
                    pass
        finally:
            eng.close()
    console.print(t)
    console.print(f"DuckDB holds {topic} up to (next offset per partition, group {group}): "
                  + (", ".join(offsets_line) or "nothing yet"))  # fmt: skip
    try:
        from warehouse.ingest.kafka import bootstrap_servers, committed_offsets

        addr = bootstrap_servers(settings)
        committed = committed_offsets(addr, topic, group, settings.kafka_config())
        console.print(f"Kafka committed for group {group}: "
                      + (", ".join(f"{p}:{o:,}" for p, o in sorted(committed.items())) or "nothing yet"))  # fmt: skip
    except WarehouseError as exc:
        console.print(f"Kafka: {exc}")


from warehouse.cli import bench as _bench  # noqa: E402  (registers `wh bench …`)

_bench.register(bench_app)
_bench.register_ingest(bench_app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # `python -m warehouse.cli.main …`
    main()
