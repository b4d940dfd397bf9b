"""Sinks: one protocol, one module per engine.

    class Sink(Protocol):
        name: str
        def write(self, batch: WriteBatch) -> WriteCounts   # idempotent
        def flush(self) -> None
        def close(self) -> None                             # also via `with`

A `WriteBatch` maps table name (market_ticks, trades, rejects, gaps) → Arrow table in
the schema of records.py. `write` stores only rows whose dedup key is not stored yet, so
replaying a batch — a re-import, a retry after a crash — adds nothing.
"""

from warehouse.sinks.base import Sink, WriteBatch, WriteCounts, open_sinks
from warehouse.sinks.memory import MemorySink

__all__ = ["MemorySink", "Sink", "WriteBatch", "WriteCounts", "open_sinks"]
