"""ClickHouse sink: MergeTree tables via clickhouse-connect `insert_arrow` (embedded or server)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from warehouse.config import Settings
from warehouse.sinks.base import WriteBatch, WriteCounts, existing_keys, only_new, prepare
from warehouse.sql.engines import ClickHouseEngine
from warehouse.sql.migrate import migrate


class ClickHouseSink:
    name = "clickhouse"

    def __init__(self, settings: Settings, *, engine: ClickHouseEngine | None = None) -> None:
        self.engine = engine or ClickHouseEngine(settings)
        migrate(self.engine)

    def write(self, batch: WriteBatch) -> WriteCounts:
        counts = WriteCounts()
        # Ticks first, rejects and gaps after: a crash in between leaves no reject without
        # the batch it came from having been attempted; every table's write is idempotent.
        for table, data in batch.items():
            if data.num_rows == 0:
                continue
            data = prepare(table, data)
            new = only_new(table, data, existing_keys(self.engine, table, data))
            self.engine.insert(f"wh.{table}", new)
            counts.stored[table] = new.num_rows
            counts.existing[table] = data.num_rows - new.num_rows
        return counts

    def flush(self) -> None:
        """Each insert is synchronous (a part on disk when it returns)."""

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
