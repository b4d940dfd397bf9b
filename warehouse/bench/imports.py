"""`wh bench import`: wh's import path into DuckDB beside DuckDB reading the same Parquet itself.

N synthetic quotes are written to Parquet, then (a) the ceiling — DuckDB's own
`CREATE TABLE AS SELECT * FROM read_parquet(...)` — and (b) wh's path — Parquet → decode →
sanitize → idempotent DuckDB write — each into a fresh database file.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from warehouse.bench.common import AgainstCeiling, Log, machine, quiet, synthetic_parquet
from warehouse.errors import WarehouseError
from warehouse.records import Kind

TARGET_RATIO = 0.5


@dataclass(frozen=True)
class ImportBench(AgainstCeiling):
    machine: str
    rows: int
    ceiling_seconds: float  # CREATE TABLE AS read_parquet
    wh_seconds: float  # import + sanitize + write


def _import_into(home: Path, parquet: Path) -> float:
    import pyarrow.parquet as pq

    from warehouse.config import Settings
    from warehouse.ingest.files import identity_mapping, iter_parquet
    from warehouse.pipeline import run_import
    from warehouse.sinks.duckdb import DuckDBSink

    sink = DuckDBSink(Settings(home=home))
    try:
        mapping = identity_mapping(Kind.QUOTE, pq.ParquetFile(parquet).schema_arrow.names)
        t = time.perf_counter()
        report = run_import(iter_parquet(parquet, mapping), source=str(parquet), sinks=[sink])
        elapsed = time.perf_counter() - t
    finally:
        sink.close()
    if report.rows_rejected:
        raise WarehouseError(f"bench import: {report.rows_rejected:,} synthetic quotes rejected: {report.rejected}")
    return elapsed


def run(ticks: int = 10_000_000, *, keep: Path | None = None, log: Log = quiet) -> ImportBench:
    """`keep`: work directory to leave behind (default: a temporary one, removed)."""
    import duckdb

    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="wh-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        log(f"writing {ticks:,} synthetic quotes to Parquet in {work}")
        parquet = synthetic_parquet(work / "feed", ticks, trade_ratio=0.0)[Kind.QUOTE].path
        log("ceiling: CREATE TABLE AS read_parquet")
        con = duckdb.connect(str(work / "ceiling.duckdb"))
        try:
            t = time.perf_counter()
            con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(parquet)])
            ceiling = time.perf_counter() - t
        finally:
            con.close()
        log("wh: import + sanitize + write")
        ours = _import_into(work / "wh", parquet)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return ImportBench(machine=machine(), rows=ticks, ceiling_seconds=ceiling, wh_seconds=ours)
