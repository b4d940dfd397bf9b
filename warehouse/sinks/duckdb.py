"""DuckDB sink: the file $WH_HOME/warehouse.duckdb; one transaction per batch, all tables."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from warehouse.config import Settings
from warehouse.sinks.base import WriteBatch, WriteCounts, existing_keys, only_new, prepare, sort_for_storage
from warehouse.sql.engines import DuckDBEngine
from warehouse.sql.migrate import migrate


class DuckDBSink:
    name = "duckdb"

    def __init__(self, settings: Settings, *, engine: DuckDBEngine | None = None) -> None:
        self.engine = engine or DuckDBEngine(settings.duckdb_path)
        migrate(self.engine)

    def write(self, batch: WriteBatch) -> WriteCounts:
        counts = WriteCounts()
        self.engine.begin()
        try:
            for table, data in batch.items():
                if data.num_rows == 0:
                    continue
                data = prepare(table, data)
                new = only_new(table, data, existing_keys(self.engine, table, data))
                self.engine.insert(f"wh.{table}", sort_for_storage(table, new))
                counts.stored[table] = new.num_rows
                counts.existing[table] = data.num_rows - new.num_rows
            self.engine.commit()
        except BaseException:
            self.engine.rollback()
            raise
        return counts

    def flush(self) -> None:
        """Each write commits; nothing is buffered."""

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
