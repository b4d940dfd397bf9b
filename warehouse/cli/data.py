"""Getting ticks in: `wh import`, `wh generate`, `wh demo`, `wh migrate`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer

from warehouse.cli.common import (
    Format,
    ImportFormat,
    StoreChoice,
    TickKind,
    TsUnit,
    console,
    fail,
    parse_pairs,
    print_error,
    progress_bar,
)
from warehouse.cli.output import emit, print_import_report
from warehouse.config import get_settings
from warehouse.errors import WarehouseError
from warehouse.pipeline import ImportReport
from warehouse.records import Kind, SourceBatch
from warehouse.sanitize import RULES, Policy, SanitizeConfig

KINDS = {TickKind.quotes: Kind.QUOTE, TickKind.trades: Kind.TRADE}


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    for command in (generate, migrate, demo):
        app.command()(command)


def _policies(items: list[str]) -> dict[str, Policy]:
    out: dict[str, Policy] = {}
    for item in items:
        rule, _, pol = item.partition("=")
        if rule not in RULES or pol not in ("reject", "raise"):
            raise fail(f"--policy {item!r}: use RULE=reject|raise with RULE one of {', '.join(RULES)}")
        out[rule] = Policy(pol)
    return out


def _run(batches: Iterator[SourceBatch], source: str, total: int, label: str, engines: Sequence[str],
         config: SanitizeConfig) -> ImportReport:  # fmt: skip
    """One import into `engines` with a progress bar (on a terminal)."""
    from warehouse.pipeline import run_import
    from warehouse.sinks import open_sinks

    sinks = open_sinks(list(engines), get_settings())
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


def import_(
    paths: list[Path] = typer.Argument(
        None,
        help="Files to import (CSV, .csv.gz/.csv.zst, Parquet); a directory imports "
        "its files of the --format (default with --pipeline: the spec's files)",
    ),
    pipeline: str | None = typer.Option(
        None,
        "--pipeline",
        "-p",
        help="pipeline spec (pipelines/NAME.yaml, or a path) giving the format, mapping, "
        "rules and sinks; the format options below are then taken from it",
    ),
    fmt: ImportFormat = typer.Option(ImportFormat.tardis, "--format", "-f", help="what the files are"),
    kind: TickKind | None = typer.Option(
        None, "--kind", help="csv/parquet (default: quotes; Parquet without --map: told by its columns)"
    ),
    map_: list[str] = typer.Option([], "--map", help="csv/parquet: FIELD=COLUMN (e.g. --map bid=best_bid)"),
    const: list[str] = typer.Option([], "--const", help="FIELD=VALUE for every row (e.g. --const symbol=BTCUSDT)"),
    ts_unit: TsUnit = typer.Option(TsUnit.us, "--ts-unit", help="unit of numeric timestamps"),
    ts_format: str | None = typer.Option(None, "--ts-format", help="strftime format of textual timestamps"),
    asset_class: str = typer.Option("crypto", "--asset-class", help="tardis: asset class of the file"),
    engine: StoreChoice | None = typer.Option(
        None, "--engine", "-e", help="where to store (default: all, or the spec's sinks)"
    ),
    policy: list[str] = typer.Option([], "--policy", help="RULE=reject|raise (default reject)"),
) -> None:
    """Import tick files: decode, sanitize, store (idempotent: a second import adds nothing)."""
    from warehouse.ingest.decode import Mapping
    from warehouse.ingest.files import expand_paths
    from warehouse.ingest.mapping_check import check_mapping
    from warehouse.pipeline.sources import file_batches
    from warehouse.pipeline.spec import load_spec
    from warehouse.sql.engines import engine_names

    spec = load_spec(pipeline or "files")
    src = spec.source.files
    if src is None:
        raise fail(f"--pipeline {pipeline}: the spec reads Kafka, not files; use `wh ingest --pipeline {pipeline}`")
    if pipeline is not None:  # the spec says how to read
        fmt, ts_unit, ts_format, asset_class = (
            ImportFormat(src.format),
            TsUnit(src.ts_unit),
            src.ts_format,
            src.asset_class,
        )
        kind = TickKind(src.kind) if src.kind is not None else None
        map_ = [*(f"{k}={v}" for k, v in src.map.items()), *map_]
        const = [*(f"{k}={v}" for k, v in src.const.items()), *const]
    if not paths:
        if pipeline is None:
            raise fail("give the files to import (or --pipeline NAME to import the files its spec names)")
        paths = src.files(get_settings().home)
        if not paths:
            raise fail(f"--pipeline {pipeline}: no files match {src.path!r} under {get_settings().home}")
    engines = engine_names(engine.value) if engine is not None else [str(n) for n in spec.sinks]
    config = spec.sanitize.config()
    config.policies.update(_policies(policy))
    cols = parse_pairs(map_, "--map")
    consts = parse_pairs(const, "--const")
    if fmt != ImportFormat.tardis:  # the options are checked once, before any file is read
        check_mapping(Mapping(KINDS[kind or TickKind.quotes], cols, consts, ts_unit=ts_unit.value, ts_format=ts_format))
    failed = 0
    for path in expand_paths(paths, fmt.value):

        def one(path: Path = path) -> ImportReport:
            batches = file_batches(path, fmt.value, kind=KINDS[kind] if kind is not None else None, columns=cols,
                                   constants=consts, ts_unit=ts_unit.value, ts_format=ts_format,
                                   asset_class=asset_class)  # fmt: skip
            return _run(batches, str(path.resolve()), path.stat().st_size, path.name, engines, config)

        try:
            print_import_report(one())
        except WarehouseError as exc:  # this file is reported; the others still import
            print_error(exc)
            failed += 1
    if failed:
        raise typer.Exit(1)


def generate(
    instruments: int = typer.Option(165, "--instruments", "-n", help="number of instruments (6 … 165)"),
    ticks: int = typer.Option(1_000_000, "--ticks", "-t", min=1, help="ticks to generate (quotes + trades)"),
    seed: int = typer.Option(1, "--seed", "-s"),
    start: str = typer.Option("2024-01-02", "--start", help="UTC start (ISO date/time)"),
    days: float = typer.Option(1.0, "--days", help="time span of the feed"),
    trade_ratio: float = typer.Option(0.2, "--trade-ratio", min=0.0, max=1.0, help="share of ticks that are trades"),
    bad_rate: float = typer.Option(
        0.0, "--bad-rate", min=0.0, max=1.0, help="share of bad ticks (NaN, ≤0, crossed, …)"
    ),
    dup_rate: float = typer.Option(0.0, "--dup-rate", min=0.0, max=1.0, help="share of ticks delivered twice"),
    ooo_rate: float = typer.Option(
        0.0, "--ooo-rate", min=0.0, max=1.0, help="share of ticks with out-of-order event time"
    ),
    gap_rate: float = typer.Option(0.0, "--gap-rate", min=0.0, max=1.0, help="share of ticks after a sequence gap"),
    out: Path | None = typer.Option(None, "--out", help="write Parquet files into this directory instead"),
    engine: StoreChoice = typer.Option(StoreChoice.all, "--engine", "-e", help="where to store"),
) -> None:
    """Generate the synthetic multi-asset feed into the warehouse (or Parquet with --out)."""
    from warehouse.ingest.parquet_out import write_parquet
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
        if out.is_file():
            raise fail(f"--out {str(out)!r} is a file: give a directory (quotes.parquet and trades.parquet go there)")
        with progress_bar() as progress:
            task = progress.add_task("generate → parquet", total=feed.ticks, rows=0)
            try:
                files = write_parquet(feed.batches(), out,
                                      on_batch=lambda b, rows: progress.update(task, completed=b.progress, rows=rows))  # fmt: skip
            except OSError as exc:
                raise fail(f"--out {str(out)!r}: cannot write: {exc.strerror or exc}") from None
        for f in files.values():
            console.print(f"{f.path}: {f.rows:,} rows")
        return
    report = _run(feed.batches(), feed.source, ticks, f"synthetic seed={seed}", engine_names(engine.value),
                  SanitizeConfig())  # fmt: skip
    print_import_report(report)


def migrate(
    engine: StoreChoice = typer.Option(StoreChoice.all, "--engine", "-e", help="which engines"),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="ClickHouse: the tables as Distributed over <table>_local on this cluster "
        "(ddl/clickhouse_cluster; as WH_CLICKHOUSE_CLUSTER, which the other commands need too)",
    ),
) -> None:
    """Apply ddl/<engine>/NNN_*.sql in order (safe to re-run; refuses edited applied files)."""
    import re

    from warehouse.sql.engines import engine_names, open_engine
    from warehouse.sql.migrate import migrate as run

    settings = get_settings()
    if cluster is not None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", cluster):
            raise fail("--cluster: a ClickHouse cluster name (letters, digits, _)")
        if not settings.clickhouse.is_server:
            raise fail("--cluster: set WH_CLICKHOUSE_URL to a node of the cluster (the embedded engine is one node)")
        if settings.clickhouse.cluster not in (None, cluster):
            raise fail(f"--cluster {cluster} but WH_CLICKHOUSE_CLUSTER={settings.clickhouse.cluster}: which one?")
        settings.clickhouse = settings.clickhouse.model_copy(update={"cluster": cluster})
    for name in engine_names(engine.value):
        eng = open_engine(name, settings)
        try:
            applied = run(eng)
        finally:
            eng.close()
        console.print(f"{name}: " + (f"applied {', '.join(applied)}" if applied else "up to date"))


def demo(
    ticks: int = typer.Option(200_000, "--ticks", help="synthetic ticks when the Tardis samples are absent"),
) -> None:
    """The main job on the embedded default: import real samples (or generate a day), show a z-score.

    The samples are the `tardis_*.csv` files in WH_SAMPLES_DIR (default ../shared/data beside the repo)."""
    from warehouse import analytics
    from warehouse.ingest.files import detect_tardis_kind, iter_csv, tardis_mapping
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.sql.engines import open_engine

    settings = get_settings()
    samples = settings.tardis_samples
    engines = ["duckdb", "clickhouse"]
    if samples:
        console.print(f"Importing {len(samples)} Tardis sample file(s) from {settings.samples_dir}")
        for path in samples:
            k = detect_tardis_kind(path)
            print_import_report(_run(iter_csv(path, tardis_mapping(k)), str(path.resolve()), path.stat().st_size,
                                     path.name, engines, SanitizeConfig()))  # fmt: skip
        symbol, venue = "BTCUSDT", "binance-futures"
    else:
        console.print(f"No Tardis samples at {settings.samples_dir}: generating a synthetic day ({ticks:,} ticks)")
        feed = SyntheticFeed(ticks=ticks, seed=1)
        print_import_report(_run(feed.batches(), feed.source, ticks, "synthetic", engines, SanitizeConfig()))
        symbol, venue = "BTCUSDT", "binance"
    for name in engines:
        eng = open_engine(name, settings, read_only=True)
        try:  # the asset, as people say it: the instrument catalog knows BTC is BTCUSDT here
            table = analytics.zscore(eng, "BTC", limit=10, prefer_quote=settings.preferred_quote)
        finally:
            eng.close()
        emit(table, Format.table, f"wh query zscore BTC ({symbol} on {venue}), newest 10, on {name}")
    console.print(f"DuckDB file:        {settings.duckdb_path.resolve()}")
    console.print(f"ClickHouse:         {settings.clickhouse_where()}")
    console.print("Try: wh query zscore BTC --engine clickhouse --limit 20   ·   wh query instruments")
