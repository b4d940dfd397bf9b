"""`wh bench replay`: ticks/s out of the warehouse into strategies, beside an unordered scan.

The same run generates N synthetic ticks (165 instruments, 20 % trades) over `--days`
into DuckDB (and with `--engine clickhouse`, into embedded ClickHouse), then measures:

* ceiling: the same rows read as Arrow record batches, no order, nothing done with them;
* replay → no-op strategy: strict event order across all symbols (warehouse/replay) into
  the simulator with a strategy that only watches — the replay's own throughput;
* replay → z-score strategy with the simulator over the first `--zscore-ticks` ticks
  (per-tick Python callbacks, orders, fills);
* peak RSS of a no-op replay of ~1 M ticks and of all N (separate processes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from warehouse.cli.common import console

START = datetime(2024, 1, 2, tzinfo=UTC)

_RSS_PROBE = """
import json, sys, time
from datetime import datetime
from warehouse.config import Settings
from warehouse.sql.engines import open_engine
from warehouse.sim.run import simulate
from warehouse.sim.strategies import NoOp
home, engine, symbols, since, until = sys.argv[1:6]
eng = open_engine(engine, Settings(home=home), read_only=True, for_replay=True)
t = time.perf_counter()
r = simulate(eng, [("n", NoOp())], symbols.split(","), datetime.fromisoformat(since), datetime.fromisoformat(until))
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"ticks": r.stats.ticks, "seconds": time.perf_counter() - t, "rss_mb": hwm / 1024}))
"""


def _probe(home: Path, engine: str, symbols: list[str], since: datetime, until: datetime) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(home), engine, ",".join(symbols), since.isoformat(),
                          until.isoformat()], capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def register_replay(app: typer.Typer) -> None:
    @app.command("replay")
    def bench_replay(
        ticks: int = typer.Option(20_000_000, "--ticks", help="synthetic ticks in the warehouse"),
        days: int = typer.Option(20, "--days", help="days they span"),
        zscore_ticks: int = typer.Option(1_000_000, "--zscore-ticks", help="ticks replayed into the z-score strategy"),
        engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse: where history comes from"),
    ) -> None:
        """Replay ticks/s into a no-op and a z-score strategy vs an unordered Arrow scan; RSS at ~1 M and N ticks."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from warehouse.cli.bench import _machine
        from warehouse.cli.main import write_parquet
        from warehouse.config import Settings
        from warehouse.ingest.synthetic import SyntheticFeed
        from warehouse.sim.run import simulate, summary
        from warehouse.sim.strategies import NoOp, ZScoreMeanReversion
        from warehouse.sql import queries
        from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
        from warehouse.sql.migrate import migrate

        if engine not in ("duckdb", "clickhouse"):
            raise typer.BadParameter("--engine: duckdb or clickhouse")
        work = Path(tempfile.mkdtemp(prefix="wh-bench-replay-"))
        try:
            t0 = time.perf_counter()
            feed = SyntheticFeed(ticks=ticks, seed=42, duration_s=days * 86_400, chunk=1_000_000)
            write_parquet(feed, work / "feed")
            settings = Settings(home=work / "wh")
            eng: DuckDBEngine | ClickHouseEngine
            if engine == "duckdb":
                eng = DuckDBEngine(settings.duckdb_path)
                migrate(eng)
                for name, table in (("quotes", "market_ticks"), ("trades", "trades")):
                    # the layout `wh import`/`wh ingest` write: arrival-order batches, each sorted by
                    # (asset_class, symbol, timestamp) — here one batch per hour
                    eng.con.execute(f"INSERT INTO wh.{table} SELECT * FROM read_parquet(?) ORDER BY "
                                    "epoch_ns(timestamp) // 3600000000000, asset_class, symbol, timestamp",
                                    [str(work / "feed" / f"{name}.parquet")])  # fmt: skip
            else:
                eng = ClickHouseEngine(settings)
                migrate(eng)
                for name, table in (("quotes", "market_ticks"), ("trades", "trades")):
                    for batch in pq.ParquetFile(work / "feed" / f"{name}.parquet").iter_batches(batch_size=2_000_000):
                        eng.insert(f"wh.{table}", pa.Table.from_batches([batch]))
                    eng.command(f"OPTIMIZE TABLE wh.{table} FINAL")
            shutil.rmtree(work / "feed")
            symbols = sorted(set(queries.load("symbols").run(eng, {"limit": 10_000}).column("symbol").to_pylist()))
            end = START + timedelta(days=days + 1)
            console.print(f"machine: {_machine()}; {ticks:,} ticks over {days} days, {len(symbols)} symbols, "
                          f"from {engine}; setup {time.perf_counter() - t0:.0f} s")  # fmt: skip

            # ceiling: the same rows as Arrow batches, unordered
            t = time.perf_counter()
            scanned = 0
            for table in ("market_ticks", "trades"):
                if isinstance(eng, DuckDBEngine):
                    reader = eng.con.sql(f"SELECT * FROM wh.{table}").to_arrow_reader(65_536)
                    for b in reader:
                        scanned += b.num_rows
                else:
                    with eng.client.query_arrow_stream(f"SELECT * FROM wh.{table}") as stream:
                        for b in stream:
                            scanned += b.num_rows
            ceiling = scanned / (time.perf_counter() - t)
            console.print(f"ceiling, unordered Arrow scan:        {ceiling:>12,.0f} ticks/s ({scanned:,} ticks)")

            t = time.perf_counter()
            res = simulate(eng, [("noop", NoOp())], symbols, START, end)
            noop = res.stats.ticks / (time.perf_counter() - t)
            console.print(f"replay → no-op strategy:              {noop:>12,.0f} ticks/s ({res.stats.ticks:,} ticks, "
                          f"{res.stats.slices} slices) = {noop / ceiling:.2f} × ceiling (target ≥ 2,000,000)")  # fmt: skip

            per_hour = max(1, ticks // (days * 24))
            hours = max(1, zscore_ticks // per_hour)
            t = time.perf_counter()
            res = simulate(eng, [("z", ZScoreMeanReversion(notional=20_000))], symbols, START,
                           START + timedelta(hours=hours))  # fmt: skip
            zs = res.stats.ticks / (time.perf_counter() - t)
            s = summary(res)[0]
            console.print(f"replay → z-score strategy + simulator: {zs:>11,.0f} ticks/s ({res.stats.ticks:,} ticks, "
                          f"{s['orders']:,} orders, {s['fills']:,} fills) = {zs / ceiling:.3f} × ceiling")  # fmt: skip
            eng.close()
            close_embedded()

            small = _probe(settings.home, engine, symbols, START, START + timedelta(hours=max(1, 1_000_000 // per_hour)))
            big = _probe(settings.home, engine, symbols, START, end)
            console.print(f"peak RSS, no-op replay of {small['ticks']:,.0f} ticks: {small['rss_mb']:,.0f} MB; "
                          f"of {big['ticks']:,.0f} ticks: {big['rss_mb']:,.0f} MB; growth "
                          f"{big['rss_mb'] - small['rss_mb']:+,.0f} MB (target < 100 MB)")  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
