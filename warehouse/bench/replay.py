"""`wh bench replay`: ticks/s out of the warehouse into strategies, beside an unordered scan.

The same run generates N synthetic ticks (165 instruments, 20 % trades) over `days` into
DuckDB (or, with engine="clickhouse", embedded ClickHouse), then measures:

* ceiling: the same rows read as Arrow record batches, no order, nothing done with them;
* replay → no-op strategy: strict event order across all symbols (warehouse/replay) into
  the simulator with a strategy that only watches — the replay's own throughput;
* replay → z-score strategy with the simulator over the first `zscore_ticks` ticks (the batch
  strategy API: z vectorized per batch, ticks worked one by one only where it acts or an order
  is open), and the same strategy per tick (ZScorePerTick, simulate(per_tick=True)) — the
  reference, whose ledger must be the same;
* peak RSS of a no-op replay of ~1 M ticks and of all N (separate processes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from warehouse.bench.common import SCAN, Log, load_clickhouse, load_duckdb, machine, quiet, synthetic_parquet
from warehouse.errors import ConfigError

START = datetime(2024, 1, 2, tzinfo=UTC)
TARGET_NOOP_RATE = 2_000_000
TARGET_RSS_GROWTH_MB = 100

# Run in a child process so that its peak RSS is the replay's own.
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


@dataclass(frozen=True)
class RssProbe:
    ticks: int
    seconds: float
    rss_mb: float


@dataclass(frozen=True)
class ReplayBench:
    machine: str
    engine: str
    ticks: int
    days: int
    symbols: int
    setup_seconds: float
    scanned: int
    ceiling_rate: float  # ticks/s, unordered Arrow scan
    noop_ticks: int
    noop_slices: int
    noop_rate: float
    zscore_ticks: int
    zscore_orders: int
    zscore_fills: int
    zscore_rate: float
    zscore_tick_rate: float  # the per-tick reference
    zscore_same: bool  # the two z-score runs left the same ledger
    rss_small: RssProbe
    rss_big: RssProbe

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_big.rss_mb - self.rss_small.rss_mb


def _probe(home: Path, engine: str, symbols: list[str], since: datetime, until: datetime) -> RssProbe:
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(home), engine, ",".join(symbols), since.isoformat(),
                          until.isoformat()], capture_output=True, text=True, check=True)  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return RssProbe(int(got["ticks"]), float(got["seconds"]), float(got["rss_mb"]))


def _scan(eng: Any) -> int:
    """Every stored tick as Arrow batches, in whatever order the engine gives them."""
    scanned = 0
    for sql in SCAN.values():
        for b in eng.stream(sql):
            scanned += b.num_rows
    return scanned


def run(ticks: int = 20_000_000, days: int = 20, zscore_ticks: int = 1_000_000, engine: str = "duckdb", *,
        log: Log = quiet) -> ReplayBench:  # fmt: skip
    """`engine`: where history comes from (duckdb | clickhouse)."""
    from warehouse.config import Settings
    from warehouse.sim.run import simulate, summary
    from warehouse.sim.strategies import NoOp, ZScoreMeanReversion, ZScorePerTick
    from warehouse.sql import queries
    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
    from warehouse.sql.migrate import migrate

    if engine not in ("duckdb", "clickhouse"):
        raise ConfigError(f"bench replay: engine {engine!r}: use duckdb or clickhouse")
    work = Path(tempfile.mkdtemp(prefix="wh-bench-replay-"))
    try:
        t0 = time.perf_counter()
        log(f"writing {ticks:,} synthetic ticks over {days} days to Parquet")
        files = synthetic_parquet(work / "feed", ticks, duration_s=days * 86_400, chunk=1_000_000)
        settings = Settings(home=work / "wh")
        log(f"loading {engine}")
        eng: DuckDBEngine | ClickHouseEngine
        if engine == "duckdb":
            eng = DuckDBEngine(settings.duckdb_path)
            migrate(eng)
            load_duckdb(eng, files, hourly=True)
        else:
            eng = ClickHouseEngine(settings)
            migrate(eng)
            load_clickhouse(eng, files)
        try:
            shutil.rmtree(work / "feed")
            symbols = sorted(set(queries.load("symbols").run(eng, {"limit": 10_000}).column("symbol").to_pylist()))
            end = START + timedelta(days=days + 1)
            setup = time.perf_counter() - t0

            log("ceiling: unordered Arrow scan")
            t = time.perf_counter()
            scanned = _scan(eng)
            ceiling = scanned / (time.perf_counter() - t)

            log("replay → no-op strategy")
            t = time.perf_counter()
            noop = simulate(eng, [("noop", NoOp())], symbols, START, end)
            noop_rate = noop.stats.ticks / (time.perf_counter() - t)

            log("replay → z-score strategy + simulator")
            per_hour = max(1, ticks // (days * 24))
            hours = max(1, zscore_ticks // per_hour)
            t = time.perf_counter()
            zs = simulate(eng, [("z", ZScoreMeanReversion(notional=20_000))], symbols, START,
                          START + timedelta(hours=hours))  # fmt: skip
            zs_rate = zs.stats.ticks / (time.perf_counter() - t)
            s = summary(zs)[0]

            log("replay → z-score strategy per tick + simulator (the reference)")
            t = time.perf_counter()
            ref = simulate(eng, [("z", ZScorePerTick(notional=20_000))], symbols, START,
                           START + timedelta(hours=hours), per_tick=True)  # fmt: skip
            tick_rate = ref.stats.ticks / (time.perf_counter() - t)
            same = all(a.equals(b) for a, b in zip(zs.tables().values(), ref.tables().values(), strict=True))
        finally:
            eng.close()
            close_embedded()
        log("peak RSS of a no-op replay, ~1 M ticks and all of them (child processes)")
        small = _probe(settings.home, engine, symbols, START, START + timedelta(hours=max(1, 1_000_000 // per_hour)))
        big = _probe(settings.home, engine, symbols, START, end)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReplayBench(machine=machine(), engine=engine, ticks=ticks, days=days, symbols=len(symbols),
                       setup_seconds=setup, scanned=scanned, ceiling_rate=ceiling, noop_ticks=noop.stats.ticks,
                       noop_slices=noop.stats.slices, noop_rate=noop_rate, zscore_ticks=zs.stats.ticks,
                       zscore_orders=cast(int, s["orders"]), zscore_fills=cast(int, s["fills"]), zscore_rate=zs_rate,
                       zscore_tick_rate=tick_rate, zscore_same=same, rss_small=small, rss_big=big)  # fmt: skip
