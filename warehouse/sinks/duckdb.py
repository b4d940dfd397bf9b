"""DuckDB sink: the file $WH_HOME/warehouse.duckdb; one transaction per batch, all tables."""

from __future__ import annotations

import pyarrow as pa

from warehouse.config import Settings
from warehouse.sinks.base import SinkBase, existing_keys, sort_for_storage
from warehouse.sql.engines import DuckDBEngine
from warehouse.sql.migrate import migrate


class DuckDBSink(SinkBase):
    name = "duckdb"

    def __init__(self, settings: Settings, *, engine: DuckDBEngine | None = None) -> None:
        self.engine = engine or DuckDBEngine(settings.duckdb_path)
        migrate(self.engine)

    def _existing(self, table: str, data: pa.Table) -> pa.Table | None:
        return existing_keys(self.engine, table, data)

    def _append(self, table: str, data: pa.Table) -> None:
        self.engine.insert(f"wh.{table}", sort_for_storage(table, data))

    def _begin(self) -> None:
        self.engine.begin()

    def _commit(self) -> None:
        self.engine.commit()

    def _rollback(self) -> None:
        self.engine.rollback()

    def close(self) -> None:
        self.engine.close()
