"""`wh bench zscore`: the all-symbol z-score per engine, and one symbol's latency.

The all-symbol z-score (queries/internal/zscore_all.sql) runs on DuckDB and ClickHouse over
the same N synthetic quotes; then p50/p95 latency of `wh query zscore BTCUSDT` (newest 100)
on each engine, as the command runs it (the symbol's venue looked up first) and with
`--exchange` given (no lookup).
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.bench.common import Log, load_clickhouse, load_duckdb, machine, quiet, synthetic_parquet

TARGET_ROWS_PER_S = 20_000_000  # DuckDB
TARGET_P50_MS = 20.0


@dataclass(frozen=True)
class Throughput:
    engine: str
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


@dataclass(frozen=True)
class Latency:
    engine: str
    exchange: str  # "" = looked up, as `wh query zscore BTCUSDT` does
    p50_ms: float
    p95_ms: float


@dataclass
class ZScoreBench:
    machine: str
    rows: int
    throughput: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95); p95 by nearest rank: the ⌈0.95·n⌉-th smallest (48th of 50; the largest of 2)."""
    samples = sorted(samples)
    return statistics.median(samples), samples[math.ceil(0.95 * len(samples)) - 1]


def run(ticks: int = 10_000_000, repeats: int = 50, *, log: Log = quiet) -> ZScoreBench:
    from warehouse import analytics
    from warehouse.config import Settings
    from warehouse.sql import queries
    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
    from warehouse.sql.migrate import migrate

    work = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    try:
        settings = Settings(home=work / "wh")
        ch = ClickHouseEngine(settings)  # first: an unreachable server fails before the data is made
        log(f"writing {ticks:,} synthetic quotes to Parquet")
        files = synthetic_parquet(work / "feed", ticks, trade_ratio=0.0)
        duck = DuckDBEngine(settings.duckdb_path)
        try:
            log("loading DuckDB and ClickHouse")
            migrate(duck)
            load_duckdb(duck, files)
            migrate(ch)
            load_clickhouse(ch, files)
            result = ZScoreBench(machine=machine(), rows=ticks)
            q = queries.load("zscore_all", internal=True)
            for eng in (duck, ch):
                q.run(eng, {})  # warm
                t = time.perf_counter()
                row = q.run(eng, {}).to_pylist()[0]
                result.throughput.append(Throughput(eng.name, row["rows"], time.perf_counter() - t))
            for eng in (duck, ch):
                for venue in ("", "binance"):
                    analytics.zscore(eng, "BTCUSDT", exchange=venue)  # warm
                    lat = []
                    for _ in range(repeats):
                        t = time.perf_counter()
                        analytics.zscore(eng, "BTCUSDT", exchange=venue)
                        lat.append((time.perf_counter() - t) * 1000)
                    result.latency.append(Latency(eng.name, venue, *_percentiles(lat)))
        finally:
            duck.close()
            close_embedded()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result
