"""`wh bench import|zscore`: throughput against a ceiling measured in the same run.

import: N synthetic quotes written to Parquet, then (a) the ceiling — DuckDB's own
`CREATE TABLE AS SELECT * FROM read_parquet(...)` — and (b) wh's path — Parquet →
decode → sanitize → idempotent DuckDB write — each into a fresh database file.
zscore: the all-symbol z-score (queries/internal/zscore_all.sql) on DuckDB and
ClickHouse over the same N rows, and p50/p95 latency of `wh query zscore SYMBOL` (newest
100) on each engine.
"""

from __future__ import annotations

import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import typer

from warehouse.cli.common import console, guarded


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _make_parquet(ticks: int, workdir: Path) -> Path:
    from warehouse.cli.main import write_parquet
    from warehouse.ingest.synthetic import SyntheticFeed

    feed = SyntheticFeed(ticks=ticks, seed=42, trade_ratio=0.0, chunk=500_000)
    write_parquet(feed, workdir)
    return workdir / "quotes.parquet"


def _import_into(home: Path, parquet: Path) -> float:
    import pyarrow.parquet as pq

    from warehouse.config import Settings
    from warehouse.ingest.files import identity_mapping, iter_parquet
    from warehouse.pipeline import run_import
    from warehouse.records import Kind
    from warehouse.sinks.duckdb import DuckDBSink

    settings = Settings(home=home)
    sink = DuckDBSink(settings)
    mapping = identity_mapping(Kind.QUOTE, pq.ParquetFile(parquet).schema_arrow.names)
    t = time.perf_counter()
    report = run_import(iter_parquet(parquet, mapping), source=str(parquet), sinks=[sink])
    elapsed = time.perf_counter() - t
    sink.close()
    assert report.rows_rejected == 0, report.rejected
    return elapsed


def register(app: typer.Typer) -> None:
    @app.command("import")
    def bench_import(
        ticks: int = typer.Option(10_000_000, "--ticks", help="synthetic quotes"),
        keep: Path | None = typer.Option(None, "--keep", help="keep the work directory here"),
    ) -> None:
        """Import+sanitize+write rows/s into DuckDB vs CREATE TABLE AS read_parquet (ceiling)."""
        import duckdb

        work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="wh-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            parquet = _make_parquet(ticks, work / "feed")
            con = duckdb.connect(str(work / "ceiling.duckdb"))
            t = time.perf_counter()
            con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(parquet)])
            ceiling = time.perf_counter() - t
            con.close()
            ours = _import_into(work / "wh", parquet)
            console.print(f"machine: {_machine()}")
            console.print(f"rows: {ticks:,}")
            console.print(f"ceiling CTAS read_parquet: {ceiling:.2f} s = {ticks / ceiling:,.0f} rows/s")
            console.print(f"wh import+sanitize+write:  {ours:.2f} s = {ticks / ours:,.0f} rows/s")
            console.print(f"ratio wh / ceiling: {ceiling / ours:.3f} (target ≥ 0.5)")
        finally:
            if keep is None:
                shutil.rmtree(work, ignore_errors=True)

    @app.command("zscore")
    def bench_zscore(
        ticks: int = typer.Option(10_000_000, "--ticks", help="synthetic quotes"),
        repeats: int = typer.Option(50, "--repeats", help="latency samples per engine"),
    ) -> None:
        """All-symbol z-score rows/s per engine; p50 latency of one symbol's newest 100."""
        import pyarrow.parquet as pq

        from warehouse import analytics
        from warehouse.config import Settings
        from warehouse.sql import queries
        from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
        from warehouse.sql.migrate import migrate

        work = Path(tempfile.mkdtemp(prefix="wh-bench-"))
        try:
            settings = Settings(home=work / "wh")
            ch = guarded(lambda: ClickHouseEngine(settings))  # first: an unreachable server fails before the data is made
            parquet = _make_parquet(ticks, work / "feed")
            duck = DuckDBEngine(settings.duckdb_path)
            migrate(duck)
            duck.con.execute("INSERT INTO wh.market_ticks SELECT * FROM read_parquet(?) "
                             "ORDER BY asset_class, symbol, timestamp", [str(parquet)])  # fmt: skip
            migrate(ch)
            for batch in pq.ParquetFile(parquet).iter_batches(batch_size=2_000_000):
                import pyarrow as pa

                ch.insert("wh.market_ticks", pa.Table.from_batches([batch]))
            ch.command("OPTIMIZE TABLE wh.market_ticks FINAL")
            console.print(f"machine: {_machine()}; rows: {ticks:,}")
            q = queries.load("zscore_all", internal=True)
            for eng in (duck, ch):
                q.run(eng, {})  # warm
                t = time.perf_counter()
                res = q.run(eng, {}).to_pylist()[0]
                el = time.perf_counter() - t
                console.print(f"{eng.name:10s} all-symbol z-score: {el:.2f} s = {res['rows'] / el:,.0f} rows/s "
                              f"(target on duckdb ≥ 20,000,000)")  # fmt: skip
            for eng in (duck, ch):
                # as `wh query zscore BTCUSDT` runs it (the symbol's venue looked up first), and
                # with --exchange given (no lookup)
                for label, venue in (("", ""), (" --exchange binance", "binance")):
                    analytics.zscore(eng, "BTCUSDT", exchange=venue)
                    lat = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        analytics.zscore(eng, "BTCUSDT", exchange=venue)
                        lat.append((time.perf_counter() - t) * 1000)
                    lat.sort()
                    console.print(f"{eng.name:10s} zscore BTCUSDT{label} newest 100: p50 {statistics.median(lat):.1f} "
                                  f"ms, p95 {lat[int(len(lat) * 0.95) - 1]:.1f} ms (target p50 < 20 ms)")  # fmt: skip
            duck.close()
            close_embedded()
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def register_ingest(app: typer.Typer) -> None:
    @app.command("ingest")
    def bench_ingest(
        ticks: int = typer.Option(200_000, "--ticks", help="JSON ticks (the embedded broker keeps ~5 MB per partition)"),
        bootstrap: str | None = typer.Option(None, "--bootstrap", help="a real cluster (default: embedded broker)"),
    ) -> None:
        """JSON ticks through Kafka into DuckDB / ClickHouse vs consume-only; ClickHouse insert vs file()."""
        import uuid

        import pyarrow.parquet as pq
        from confluent_kafka import Consumer

        from warehouse.config import Settings
        from warehouse.ingest.consumer import Ingestor
        from warehouse.ingest.kafka import MockBroker, produce
        from warehouse.ingest.synthetic import SyntheticFeed
        from warehouse.sinks.base import prepare
        from warehouse.sinks.clickhouse import ClickHouseSink
        from warehouse.sinks.duckdb import DuckDBSink
        from warehouse.sql.engines import close_embedded

        broker = None
        if bootstrap is None:
            broker = MockBroker()
            bootstrap = broker.bootstrap
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        work = Path(tempfile.mkdtemp(prefix="wh-bench-"))
        try:
            feed = SyntheticFeed(ticks=ticks, seed=42, chunk=min(ticks, 200_000))
            rep = produce(bootstrap, topic, feed.batches())
            console.print(f"machine: {_machine()}; produced {rep.produced:,} JSON ticks in {rep.seconds:.2f} s "
                          f"({rep.produced / rep.seconds:,.0f} msg/s), delivery failures {rep.failed}")  # fmt: skip

            # ceiling: consume only (same topic, same extraction of values, no decoding, no sinks)
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ceiling-{topic}", "auto.offset.reset": "earliest",
                          "enable.auto.commit": False, "fetch.max.bytes": 52_428_800})  # fmt: skip
            c.subscribe([topic])
            got, first = 0, None
            while got < rep.produced:
                msgs = c.consume(num_messages=10_000, timeout=1.0)
                if msgs and first is None:
                    first = time.perf_counter()
                values = [m.value() for m in msgs if m.error() is None]
                got += len(values)
            ceiling = time.perf_counter() - (first or time.perf_counter())
            c.close()
            console.print(f"consume-only ceiling: {got / ceiling:,.0f} msg/s")
            results = {}
            for name in ("duckdb", "clickhouse"):
                settings = Settings(home=work / name)
                sink = DuckDBSink(settings) if name == "duckdb" else ClickHouseSink(settings)
                ing = Ingestor([sink], bootstrap=bootstrap, topic=topic, group=f"{name}-{topic}", stop_when_idle=2.0)
                st = ing.run()
                sink.close()
                close_embedded()
                span = (st.last_flush_at or 0) - (st.first_message_at or 0)
                results[name] = st.messages / span
                console.print(f"end-to-end into {name:10s}: {st.messages:,} msgs, {results[name]:,.0f} msg/s = "
                              f"{results[name] / (got / ceiling):.2f} × ceiling (targets ≥ 1,000,000/s and ≥ 0.5 ×)")  # fmt: skip
            # ClickHouse insert path vs the engine reading the same rows from Parquet itself
            parquet = _make_parquet(ticks, work / "pq")
            settings = Settings(home=work / "chins")
            sink = ClickHouseSink(settings)
            sink.engine.command("CREATE TABLE wh.ceiling AS wh.market_ticks")
            t = time.perf_counter()
            sink.engine.client.command("INSERT INTO wh.ceiling SELECT * FROM file({path:String}, Parquet)",
                                       parameters={"path": str(parquet.resolve())})
            ch_ceiling = time.perf_counter() - t
            table = prepare("market_ticks", pq.read_table(parquet))
            t = time.perf_counter()
            sink.write({"market_ticks": table})
            ch_ours = time.perf_counter() - t
            sink.close()
            close_embedded()
            console.print(f"ClickHouse INSERT … SELECT FROM file(parquet): {ticks / ch_ceiling:,.0f} rows/s; "
                          f"wh insert path (dedup lookup + insert_arrow): {ticks / ch_ours:,.0f} rows/s = "
                          f"{ch_ceiling / ch_ours:.2f} × (target ≥ 0.7)")  # fmt: skip
            console.print(f"peak RSS of this process: {_rss_mb():,.0f} MB")
        finally:
            if broker is not None:
                broker.close()
            shutil.rmtree(work, ignore_errors=True)
