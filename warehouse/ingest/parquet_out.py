"""Source batches → `quotes.parquet` / `trades.parquet` in the stored schema (records.py).

`wh generate --out DIR` and the benchmarks write the synthetic feed this way; `wh import
--format parquet` reads the files back (kind and columns told by the file). Rows are
written as they come, not sanitized: a feed generated with faults keeps its bad ticks, so
importing the files later exercises the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.records import SCHEMA_FOR_KIND, Kind, SourceBatch, conform

_TS_NS_UTC = pl.Datetime("ns", "UTC")
FILE_FOR_KIND = {Kind.QUOTE: "quotes", Kind.TRADE: "trades"}


@dataclass(frozen=True)
class ParquetFile:
    path: Path
    rows: int


def stored_table(batch: SourceBatch) -> pa.Table:
    """A batch's rows as the warehouse stores them: private `_` columns dropped, times UTC ns."""
    rows = batch.rows.drop([c for c in batch.rows.columns if c.startswith("_")])
    rows = rows.with_columns(pl.col("timestamp").cast(_TS_NS_UTC), pl.col("received_at").cast(_TS_NS_UTC))
    return conform(rows, SCHEMA_FOR_KIND[batch.kind])


def write_parquet(
    batches: Iterable[SourceBatch], out: Path, *, on_batch: Callable[[SourceBatch, int], None] | None = None
) -> dict[Kind, ParquetFile]:
    """Write every batch into `out/quotes.parquet` and `out/trades.parquet` (zstd), one file per
    kind that occurs; `on_batch(batch, rows_written_so_far)` after each. Returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[Kind, pq.ParquetWriter] = {}
    counts: dict[Kind, int] = {}
    try:
        for batch in batches:
            table = stored_table(batch)
            if batch.kind not in writers:
                writers[batch.kind] = pq.ParquetWriter(out / f"{FILE_FOR_KIND[batch.kind]}.parquet", table.schema,
                                                       compression="zstd")  # fmt: skip
            writers[batch.kind].write_table(table)
            counts[batch.kind] = counts.get(batch.kind, 0) + table.num_rows
            if on_batch is not None:
                on_batch(batch, sum(counts.values()))
    finally:
        for w in writers.values():
            w.close()
    return {k: ParquetFile(out / f"{FILE_FOR_KIND[k]}.parquet", n) for k, n in counts.items()}
