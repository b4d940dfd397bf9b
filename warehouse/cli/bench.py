"""`wh bench import|zscore|ingest|freshness|questdb|analytics|replay`: run a benchmark of warehouse.bench, print its figures.

Each prints ratios against a ceiling measured in the same run; progress notes go to stderr.
"""

from __future__ import annotations

from pathlib import Path

import typer

from warehouse.cli.common import EngineChoice, console, err

app = typer.Typer(help="Benchmarks that print ratios against a ceiling measured in the same run.", no_args_is_help=True)


def _log(message: str) -> None:
    err.print(f"… {message}")


@app.command("import")
def bench_import(
    ticks: int = typer.Option(10_000_000, "--ticks", min=1, help="synthetic quotes"),
    keep: Path | None = typer.Option(None, "--keep", help="keep the work directory here"),
) -> None:
    """Import+sanitize+write rows/s into DuckDB vs CREATE TABLE AS read_parquet (ceiling)."""
    from warehouse.bench import imports

    r = imports.run(ticks, keep=keep, log=_log)
    console.print(f"machine: {r.machine}")
    console.print(f"rows: {r.rows:,}")
    console.print(f"ceiling CTAS read_parquet: {r.ceiling_seconds:.2f} s = {r.ceiling_rate:,.0f} rows/s")
    console.print(f"wh import+sanitize+write:  {r.wh_seconds:.2f} s = {r.wh_rate:,.0f} rows/s")
    console.print(f"ratio wh / ceiling: {r.ratio:.3f} (target ≥ {imports.TARGET_RATIO})")


@app.command("zscore")
def bench_zscore(
    ticks: int = typer.Option(10_000_000, "--ticks", min=1, help="synthetic quotes"),
    repeats: int = typer.Option(50, "--repeats", min=1, help="latency samples per engine"),
) -> None:
    """All-symbol z-score rows/s per engine; p50 latency of one symbol's newest 100."""
    from warehouse.bench import zscore

    r = zscore.run(ticks, repeats, log=_log)
    console.print(f"machine: {r.machine}; rows: {r.rows:,}")
    for t in r.throughput:
        console.print(f"{t.engine:10s} all-symbol z-score: {t.seconds:.2f} s = {t.rate:,.0f} rows/s "
                      f"(target on duckdb ≥ {zscore.TARGET_ROWS_PER_S:,})")  # fmt: skip
    for st in r.stored:
        console.print(f"{st.engine:10s} all-symbol z-score, window 60 stored with the quotes: {st.rate:,.0f} rows/s "
                      f"({st.rows:,} in {st.seconds:.3f} s); same NULLs as the SQL: {st.same_nulls}, "
                      f"Σz differs by {st.z_sum_difference:.1e}")  # fmt: skip
    for k in r.kernel:
        console.print(f"{k.engine:10s} all-symbol z-score, O(1) kernel: read {k.read_seconds:.2f} s + kernel "
                      f"{k.kernel_seconds:.3f} s = {k.rate:,.0f} rows/s end to end, {k.kernel_rate:,.0f} rows/s "
                      f"kernel alone; same NULLs as the SQL: {k.same_nulls}, Σz differs by {k.z_sum_difference:.1e}")  # fmt: skip
    for lat in r.latency:
        label = f" --exchange {lat.exchange}" if lat.exchange else ""
        console.print(f"{lat.engine:10s} zscore BTCUSDT{label} newest 100: p50 {lat.p50_ms:.1f} ms, "
                      f"p95 {lat.p95_ms:.1f} ms (target p50 < {zscore.TARGET_P50_MS:.0f} ms)")  # fmt: skip


@app.command("ingest")
def bench_ingest(
    ticks: int = typer.Option(
        200_000, "--ticks", min=1, help="JSON ticks (the embedded broker keeps ~5 MB per partition)"
    ),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help="a real cluster (default: embedded broker)"),
    arrow_ticks: int = typer.Option(
        500_000, "--arrow-ticks", min=0, help="ticks for the Arrow wire format run (1,000 per message; 0: skip)"
    ),
) -> None:
    """JSON ticks through Kafka into DuckDB / ClickHouse vs consume-only; the Arrow wire format into
    DuckDB vs consume-only; ClickHouse insert vs file()."""
    from warehouse.bench import ingest

    r = ingest.run(ticks, bootstrap=bootstrap, log=_log, arrow_ticks=arrow_ticks)
    console.print(f"machine: {r.machine}; produced {r.produced:,} JSON ticks in {r.produce_seconds:.2f} s "
                  f"({r.produce_rate:,.0f} msg/s), delivery failures {r.delivery_failures}")  # fmt: skip
    console.print(f"consume-only ceiling: {r.ceiling_rate:,.0f} msg/s")
    for e in r.end_to_end:
        console.print(f"end-to-end into {e.engine:10s}: {e.messages:,} msgs, {e.rate:,.0f} msg/s = "
                      f"{e.rate / r.ceiling_rate:.2f} × ceiling (targets ≥ {ingest.TARGET_RATE:,}/s and "
                      f"≥ {ingest.TARGET_RATIO} ×; the last batch's {e.last_wait:.2f} s wait for "
                      f"--batch-seconds left out: with it {e.messages / (e.seconds + e.last_wait):,.0f} msg/s)")  # fmt: skip
    if r.arrow_end_to_end is not None:
        a = r.arrow_end_to_end
        console.print(f"Arrow wire format: {r.arrow_ticks:,} ticks in {r.arrow_messages:,} messages, produced at "
                      f"{r.arrow_ticks / max(r.arrow_produce_seconds, 1e-9):,.0f} ticks/s; ceiling (consume + read the tables) "
                      f"{r.arrow_ceiling_rate:,.0f} ticks/s")  # fmt: skip
        console.print(f"end-to-end into duckdb, Arrow: {a.rate:,.0f} ticks/s = {a.rate / r.arrow_ceiling_rate:.2f} × "
                      f"ceiling (target ≥ {ingest.TARGET_ARROW:,} ticks/s)")  # fmt: skip
    console.print(f"ClickHouse copying the Parquet file itself (file()): {r.clickhouse_file_rate:,.0f} rows/s; "
                  f"wh sink write (stored-key lookup unless the catalog rules it out, Python() insert, catalog view): {r.clickhouse_wh_rate:,.0f} rows/s = "
                  f"{r.clickhouse_ratio:.2f} × with the stored z-scores, {r.clickhouse_ticks_ratio:.2f} × the quotes alone "
                  f"(target ≥ {ingest.TARGET_INSERT_RATIO})")  # fmt: skip
    console.print(f"peak RSS of this process: {r.peak_rss_mb:,.0f} MB")


@app.command("freshness")
def bench_freshness(
    rate: float = typer.Option(50_000, "--rate", min=1, help="ticks per second, steady"),
    seconds: float = typer.Option(30.0, "--seconds", min=1, help="how long the producer runs"),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="a real cluster (default: an Apache Kafka started for the run)"
    ),
) -> None:
    """Produce → queryable, p50/p99 per sink: QuestDB (hot group) and ClickHouse (cold group)."""
    from warehouse.bench import freshness

    r = freshness.run(rate, seconds, bootstrap=bootstrap, log=_log)
    console.print(f"machine: {r.machine}; broker: {r.broker}")
    console.print(f"produced {r.produced:,} ticks in {r.produce_seconds:.1f} s = {r.produce_rate:,.0f}/s "
                  f"(asked {r.rate:,.0f}/s), delivery failures {r.delivery_failures}")  # fmt: skip
    for s in r.sinks:
        met = "met" if s.p99 < s.target else "NOT met"
        console.print(f"{s.sink:10s} (batches of {s.batch}): p50 {s.p50:.3f} s, p99 {s.p99:.3f} s, "
                      f"max {s.max:.3f} s (target p99 < {s.target:g} s: {met}); {s.rows_per_s:,.0f} rows/s "
                      "while the ticks flowed")  # fmt: skip


@app.command("questdb")
def bench_questdb(
    rows: int = typer.Option(1_000_000, "--rows", min=1, help="synthetic quotes"),
    request_rows: int = typer.Option(50_000, "--request-rows", min=1, help="rows per ILP/HTTP request"),
) -> None:
    """wh's QuestDB write path (Arrow → pandas → ILP/HTTP) vs flushing the same bytes pre-serialised."""
    from warehouse.bench import questdb

    r = questdb.run(rows, request_rows, log=_log)
    console.print(f"machine: {r.machine}; {r.rows:,} quotes in requests of {r.request_rows:,} rows "
                  f"({r.bytes / r.rows:.0f} ILP bytes per row)")  # fmt: skip
    console.print(
        f"ceiling (flush of pre-serialised buffers): {r.ceiling_seconds:.2f} s = {r.ceiling_rate:,.0f} rows/s"
    )
    console.print(f"wh QuestDBEngine.insert (to pandas + Buffer.dataframe + flush): {r.wh_seconds:.2f} s = "
                  f"{r.wh_rate:,.0f} rows/s = {r.ratio:.2f} × ceiling")  # fmt: skip
    console.print(
        f"  of which Arrow → pandas {r.to_pandas_seconds:.2f} s, Buffer.dataframe {r.dataframe_seconds:.2f} s"
    )


@app.command("analytics")
def bench_analytics(
    ticks: int = typer.Option(10_000_000, "--ticks", min=1, help="synthetic ticks (quotes + 20 % trades, 5 days)"),
    traders: int = typer.Option(100_000, "--traders", min=1, help="traders in the ledger (leaderboard size)"),
    fills_per_trader: int = typer.Option(10, "--fills-per-trader", min=1),
    repeats: int = typer.Option(3, "--repeats", min=1, help="timed runs per query and engine (median)"),
) -> None:
    """Rows/s per query per engine beside polars computing the same in memory (same run)."""
    from warehouse.bench import analytics

    r = analytics.run(ticks, traders, fills_per_trader, repeats, log=_log)
    console.print(f"machine: {r.machine}; setup (generate + load both engines) {r.setup_seconds:.0f} s")
    console.print(f"rows: {r.quotes:,} quotes, {r.trades:,} trades, {r.fills:,} fills, {r.traders:,} traders")
    console.print(f"{'query':42s} {'rows in':>12s} {'duckdb rows/s':>15s} {'clickhouse rows/s':>18s} "
                  f"{'polars rows/s':>15s} {'duck/polars':>11s} {'ch/polars':>10s}")  # fmt: skip
    for c in r.cases:
        s = c.rates
        console.print(f"{c.name:42s} {c.rows_in:>12,} {s['duckdb']:>15,.0f} {s['clickhouse']:>18,.0f} "
                      f"{s['polars']:>15,.0f} {s['duckdb'] / s['polars']:>11.2f} {s['clickhouse'] / s['polars']:>10.2f}"
                      + ("" if c.same_rows else f"  ROW COUNTS DIFFER {c.sizes}"))  # fmt: skip


@app.command("replay")
def bench_replay(
    ticks: int = typer.Option(20_000_000, "--ticks", min=1, help="synthetic ticks in the warehouse"),
    days: int = typer.Option(20, "--days", min=1, help="days they span"),
    zscore_ticks: int = typer.Option(
        1_000_000, "--zscore-ticks", min=1, help="ticks replayed into the z-score strategy"
    ),
    engine: EngineChoice = typer.Option(EngineChoice.duckdb, "--engine", "-e", help="where history comes from"),
) -> None:
    """Replay ticks/s into a no-op and a z-score strategy vs an unordered Arrow scan; RSS at ~1 M and N ticks."""
    from warehouse.bench import replay

    r = replay.run(ticks, days, zscore_ticks, engine.value, log=_log)
    console.print(f"machine: {r.machine}; {r.ticks:,} ticks over {r.days} days, {r.symbols} symbols, "
                  f"from {r.engine}; setup {r.setup_seconds:.0f} s")  # fmt: skip
    console.print(f"ceiling, unordered Arrow scan:        {r.ceiling_rate:>12,.0f} ticks/s ({r.scanned:,} ticks)")
    console.print(f"replay → no-op strategy:              {r.noop_rate:>12,.0f} ticks/s ({r.noop_ticks:,} ticks, "
                  f"{r.noop_slices} slices) = {r.noop_rate / r.ceiling_rate:.2f} × ceiling "
                  f"(target ≥ {replay.TARGET_NOOP_RATE:,})")  # fmt: skip
    console.print(f"replay → z-score strategy + simulator: {r.zscore_rate:>11,.0f} ticks/s ({r.zscore_ticks:,} ticks, "
                  f"{r.zscore_orders:,} orders, {r.zscore_fills:,} fills) = {r.zscore_rate / r.ceiling_rate:.3f} × ceiling")  # fmt: skip
    console.print(f"  the same per tick (reference):       {r.zscore_tick_rate:>11,.0f} ticks/s: batch API "
                  f"{r.zscore_rate / r.zscore_tick_rate:.2f} × per tick; same ledger: "
                  f"{'yes' if r.zscore_same else 'NO — A BUG'}")  # fmt: skip
    console.print(f"peak RSS, no-op replay of {r.rss_small.ticks:,} ticks: {r.rss_small.rss_mb:,.0f} MB; "
                  f"of {r.rss_big.ticks:,} ticks: {r.rss_big.rss_mb:,.0f} MB; growth "
                  f"{r.rss_growth_mb:+,.0f} MB (target < {replay.TARGET_RSS_GROWTH_MB} MB)")  # fmt: skip
