"""ClickHouse sink: MergeTree tables via clickhouse-connect `insert_arrow` (embedded or server).

No transactions: each table's insert is its own part. Every insert is idempotent (rows
whose dedup key is stored are skipped), so a batch interrupted half-way is completed,
not doubled, when it is written again.
"""

from __future__ import annotations

import pyarrow as pa

from warehouse.config import Settings
from warehouse.sinks.base import SinkBase, StreamPosition, existing_keys
from warehouse.sinks.zscores import ZScoreKeeper
from warehouse.sql.engines import ClickHouseEngine
from warehouse.sql.migrate import migrate


class ClickHouseSink(SinkBase):
    """Every batch's stored keys are looked up: the catalog (kept by materialized views, whose
    parts land after the rows' own) cannot prove a batch new here as DuckDB's transaction can."""

    name = "clickhouse"

    def __init__(self, settings: Settings, *, engine: ClickHouseEngine | None = None) -> None:
        self.engine = engine or ClickHouseEngine(settings)
        self.zscores = ZScoreKeeper(trust_catalog=False)
        migrate(self.engine)

    def _existing(self, table: str, data: pa.Table) -> pa.Table | None:
        return existing_keys(self.engine, table, data)

    def _append(self, table: str, data: pa.Table, position: StreamPosition | None = None) -> None:
        # A retry of the same stream batch (same edges) is dropped by the server too.
        self.engine.insert(f"wh.{table}", data, dedup_token=position.token(table) if position else None)

    def _zscore_engine(self) -> ClickHouseEngine:
        return self.engine

    def _write_zscores(self, rows: pa.Table) -> None:
        """Newer versions of a ReplacingMergeTree: read with FINAL, the newest wins."""
        self.engine.insert("wh.quote_zscores", rows.drop_columns(["replaces"]))

    def close(self) -> None:
        self.engine.close()
