"""In-memory sink: the test seam (same idempotency rule as the engine sinks)."""

from __future__ import annotations

import pyarrow as pa

from warehouse.sinks.base import SinkBase


class MemorySink(SinkBase):
    name = "memory"

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table] = {}

    def _existing(self, table: str, data: pa.Table) -> pa.Table | None:
        return self.tables.get(table)

    def _append(self, table: str, data: pa.Table, position: object = None) -> None:
        old = self.tables.get(table)
        self.tables[table] = data if old is None else pa.concat_tables([old, data])
