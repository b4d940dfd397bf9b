"""`wh bench zscore`: the all-symbol z-score per engine, and one symbol's latency.

The all-symbol z-score (queries/internal/zscore_all.sql) runs on DuckDB and ClickHouse over
the same N synthetic quotes, then the O(1) kernel (analytics/rolling.py) on each engine's
quotes read in window order, checked against the SQL's checksum; then p50/p95 latency of `wh query zscore BTCUSDT` (newest 100)
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
from typing import Any

from warehouse.bench.common import Log, load_clickhouse, load_duckdb, machine, quiet, synthetic_parquet

TARGET_ROWS_PER_S = 20_000_000  # DuckDB
TARGET_P50_MS = 10.0  # issue 15 (was 20 ms: issue 4)


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


@dataclass(frozen=True)
class Kernel:
    """The O(1) kernel (analytics/rolling.py) on one engine's quotes: the ordered read, the
    kernel alone, and its agreement with the SQL's checksum of the same run."""

    engine: str
    rows: int
    read_seconds: float
    kernel_seconds: float
    same_nulls: bool
    z_sum_difference: float  # |Σz kernel − Σz SQL| / Σ|z|

    @property
    def rate(self) -> float:
        return self.rows / (self.read_seconds + self.kernel_seconds)

    @property
    def kernel_rate(self) -> float:
        return self.rows / self.kernel_seconds


@dataclass(frozen=True)
class Stored:
    """Every quote's stored default-window z-score read back (wh.quote_zscores), checked
    against the SQL's checksum of the same run."""

    engine: str
    rows: int
    seconds: float
    same_nulls: bool
    z_sum_difference: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


@dataclass
class ZScoreBench:
    machine: str
    rows: int
    throughput: list[Throughput] = field(default_factory=list)
    stored: list[Stored] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    kernel: list[Kernel] = field(default_factory=list)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95); p95 by nearest rank: the ⌈0.95·n⌉-th smallest (48th of 50; the largest of 2)."""
    samples = sorted(samples)
    return statistics.median(samples), samples[math.ceil(0.95 * len(samples)) - 1]


def _kernel(eng: Any, sql: dict, log: Log) -> Kernel:
    """Read every quote in window order, run the kernel (window 60), compare with the SQL."""
    import numpy as np

    from warehouse.analytics.rolling import read_input, zscore_all, zscore_arrays

    zscore_all(eng, 60)  # warm: compiles (or loads) the kernel, fills caches
    t = time.perf_counter()
    table, starts = read_input(eng)
    bid = table.column("bid").to_numpy()
    read = time.perf_counter() - t
    t = time.perf_counter()
    z, _, _ = zscore_arrays(bid, starts, 60)
    kernel = time.perf_counter() - t
    nulls = int(np.isnan(z).sum())
    total = float(np.nansum(np.abs(z))) or 1.0
    log(f"{eng.name}: kernel read {read:.2f} s, kernel {kernel:.3f} s")
    return Kernel(eng.name, len(z), read, kernel, nulls == sql["z_nulls"],
                  abs(float(np.nansum(z)) - float(sql["z_sum"] or 0.0)) / total)  # fmt: skip


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
            load_duckdb(duck, files, zscores=True)
            migrate(ch)
            load_clickhouse(ch, files, zscores=True)
            result = ZScoreBench(machine=machine(), rows=ticks)
            q = queries.load("zscore_all", internal=True)
            sql: dict[str, dict] = {}
            for eng in (duck, ch):
                q.run(eng, {})  # warm
                t = time.perf_counter()
                row = sql[eng.name] = q.run(eng, {}).to_pylist()[0]
                result.throughput.append(Throughput(eng.name, row["rows"], time.perf_counter() - t))
            stored = queries.load("zscore_all_stored", internal=True)
            for eng in (duck, ch):
                stored.run(eng, {})  # warm
                t = time.perf_counter()
                row = stored.run(eng, {}).to_pylist()[0]
                seconds = time.perf_counter() - t
                ref = sql[eng.name]
                total = abs(float(ref["z_sum"] or 0.0)) or 1.0
                result.stored.append(
                    Stored(
                        eng.name,
                        row["rows"],
                        seconds,
                        row["z_nulls"] == ref["z_nulls"],
                        abs(float(row["z_sum"] or 0.0) - float(ref["z_sum"] or 0.0)) / total,
                    )
                )
            for eng in (duck, ch):
                result.kernel.append(_kernel(eng, sql[eng.name], log))
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
