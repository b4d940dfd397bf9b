"""In-memory sink: the test seam (same idempotency rule as the engine sinks)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import pyarrow as pa

from warehouse.sinks.base import WriteBatch, WriteCounts, only_new, prepare


class MemorySink:
    name = "memory"

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table] = {}

    def write(self, batch: WriteBatch) -> WriteCounts:
        counts = WriteCounts()
        for table, data in batch.items():
            data = prepare(table, data)
            new = only_new(table, data, self.tables.get(table))
            self.tables[table] = pa.concat_tables([t for t in (self.tables.get(table), new) if t is not None])
            counts.stored[table] = new.num_rows
            counts.existing[table] = data.num_rows - new.num_rows
        return counts

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
