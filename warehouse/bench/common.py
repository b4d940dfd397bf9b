"""What the benchmarks share: the machine line, peak RSS, synthetic Parquet, bulk loads.

The bulk loads go around wh's write path on purpose (they prepare data for a benchmark
that measures something else), in the layout `wh import` leaves: rows sorted by
(asset_class, symbol, timestamp).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.ingest.parquet_out import ParquetFile, write_parquet
from warehouse.records import TABLE_FOR_KIND, Kind

Log = Callable[[str], None]


class AgainstCeiling:
    """A result with `rows`, `ceiling_seconds` and `wh_seconds`: the two rates and their ratio."""

    rows: int
    ceiling_seconds: float
    wh_seconds: float

    @property
    def ceiling_rate(self) -> float:
        return self.rows / self.ceiling_seconds

    @property
    def wh_rate(self) -> float:
        return self.rows / self.wh_seconds

    @property
    def ratio(self) -> float:
        return self.ceiling_seconds / self.wh_seconds


def quiet(_: str) -> None:
    """The default `log`: benchmarks say nothing until they return."""


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_parquet(workdir: Path, ticks: int, *, trade_ratio: float = 0.2, duration_s: float = 86_400.0,
                      chunk: int = 500_000) -> dict[Kind, ParquetFile]:  # fmt: skip
    """`ticks` synthetic ticks (seed 42) as quotes.parquet / trades.parquet in `workdir`."""
    from warehouse.ingest.synthetic import SyntheticFeed

    feed = SyntheticFeed(ticks=ticks, seed=42, trade_ratio=trade_ratio, duration_s=duration_s, chunk=chunk)
    return write_parquet(feed.batches(), workdir)


# Fixed statements per table (identifiers from this table, never from input).
_DUCKDB_LOAD = {
    "market_ticks": "INSERT INTO wh.market_ticks SELECT * FROM read_parquet(?) ORDER BY asset_class, symbol, timestamp",
    "trades": "INSERT INTO wh.trades SELECT * FROM read_parquet(?) ORDER BY asset_class, symbol, timestamp",
}
# as `wh import`/`wh ingest` write over time: arrival-order batches (here one per hour), each sorted
_DUCKDB_LOAD_HOURLY = {
    "market_ticks": "INSERT INTO wh.market_ticks SELECT * FROM read_parquet(?) "
                    "ORDER BY epoch_ns(timestamp) // 3600000000000, asset_class, symbol, timestamp",
    "trades": "INSERT INTO wh.trades SELECT * FROM read_parquet(?) "
              "ORDER BY epoch_ns(timestamp) // 3600000000000, asset_class, symbol, timestamp",
}  # fmt: skip
_CLICKHOUSE_OPTIMIZE = {
    "market_ticks": "OPTIMIZE TABLE wh.market_ticks FINAL",
    "trades": "OPTIMIZE TABLE wh.trades FINAL",
}
SCAN = {"market_ticks": "SELECT * FROM wh.market_ticks", "trades": "SELECT * FROM wh.trades"}


def load_duckdb(engine: Any, files: dict[Kind, ParquetFile], *, hourly: bool = False, zscores: bool = False) -> None:
    """Parquet files into a migrated DuckDBEngine, each table in one statement; then the
    instrument catalog, as the sinks would have kept it (ClickHouse's views keep it there), and
    with `zscores` the stored z-scores."""

    statements = _DUCKDB_LOAD_HOURLY if hourly else _DUCKDB_LOAD
    for kind, f in files.items():
        engine.con.execute(statements[TABLE_FOR_KIND[kind]], [str(f.path)])
    # the catalog migration's backfill: INSERT OR REPLACE from the tick tables (every row recomputed)
    engine.command(_backfill("duckdb", "instruments"))
    if zscores:
        engine.command(_backfill("duckdb", "quote_zscores"))


def _backfill(engine: str, table: str) -> str:
    """The INSERT of the migration creating wh.<table> (its fill from the tables before it): what
    the sinks would have written (the catalog; the stored z-scores, the reference's two-pass)."""
    from warehouse.sql.files import ddl_dir, split_statements

    (path,) = ddl_dir(engine).glob(f"*_{table}.sql")
    (backfill,) = [s for s in split_statements(path.read_text()) if s.lstrip().startswith("INSERT")]
    return backfill


def load_clickhouse(engine: Any, files: dict[Kind, ParquetFile], *, batch_rows: int = 2_000_000,
                    zscores: bool = False) -> None:  # fmt: skip
    """Parquet files into a migrated ClickHouseEngine in Arrow batches, then one part per
    partition; with `zscores` the stored z-scores too."""
    for kind, f in files.items():
        table = TABLE_FOR_KIND[kind]
        for batch in pq.ParquetFile(f.path).iter_batches(batch_size=batch_rows):
            engine.insert(f"wh.{table}", pa.Table.from_batches([batch]))
        engine.command(_CLICKHOUSE_OPTIMIZE[table])
    if zscores:
        engine.command(_backfill("clickhouse", "quote_zscores"))
        engine.command("OPTIMIZE TABLE wh.quote_zscores FINAL")
