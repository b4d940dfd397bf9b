"""DuckDB sink: the file $WH_HOME/warehouse.duckdb; one transaction per batch, all tables."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.config import Settings
from warehouse.sinks.base import (
    SinkBase,
    StreamPosition,
    WriteBatch,
    WriteCounts,
    existing_keys,
    merge_instruments,
    sort_for_storage,
)
from warehouse.sinks.zscores import IDENTITY, ZScoreKeeper
from warehouse.sql import queries
from warehouse.sql.engines import DuckDBEngine
from warehouse.sql.migrate import migrate


class DuckDBSink(SinkBase):
    """`hold=False` opens the file only for each write (a streaming consumer), so other
    processes — `wh query`, `wh status`, Dagster — can read between batches."""

    name = "duckdb"
    keeps_offsets = True
    atomic = True

    def __init__(self, settings: Settings, *, engine: DuckDBEngine | None = None, hold: bool = True) -> None:
        self.settings = settings
        self.hold = hold
        self.zscores = ZScoreKeeper()
        self._engine: DuckDBEngine | None = engine or DuckDBEngine(
            settings.duckdb_path, wait=settings.lock_wait_seconds
        )
        migrate(self._engine)
        if not hold:
            self._engine.close()
            self._engine = None

    @property
    def engine(self) -> DuckDBEngine:
        if self._engine is None:
            self._engine = DuckDBEngine(self.settings.duckdb_path, wait=self.settings.lock_wait_seconds)
        return self._engine

    def _release(self) -> None:
        if not self.hold and self._engine is not None:
            self._engine.close()
            self._engine = None

    def write(self, batch: WriteBatch, position: StreamPosition | None = None) -> WriteCounts:
        try:
            return super().write(batch, position)
        finally:
            self._release()

    def _existing(self, table: str, data: pa.Table) -> pa.Table | None:
        return existing_keys(self.engine, table, data)

    def _catalog(self, symbols: list[str]) -> pa.Table | None:
        return queries.load("instruments").run(self.engine, {"symbols": symbols})

    def _append(self, table: str, data: pa.Table, position: StreamPosition | None = None) -> None:
        self.engine.insert(f"wh.{table}", sort_for_storage(table, data))

    def _zscore_engine(self) -> DuckDBEngine:
        return self.engine

    def _write_zscores(self, rows: pa.Table) -> None:
        """In the batch's transaction: the rows of stored quotes replace theirs."""
        replaced = rows.filter(rows.column("replaces")).drop_columns(["replaces"])
        if replaced.num_rows:
            self.engine.delete_matching("wh.quote_zscores", replaced, list(IDENTITY), within="timestamp")
        self.engine.insert("wh.quote_zscores", rows.drop_columns(["replaces"]))

    def _note_instruments(self, summary: pa.Table, catalog: pa.Table | None) -> None:
        """Merge the batch into its instruments' catalog rows, in the batch's transaction."""
        if catalog is None:
            symbols = pc.unique(summary.column("symbol")).to_pylist()
            catalog = queries.load("instruments").run(self.engine, {"symbols": symbols})
        current = pl.from_arrow(catalog)
        added = pl.from_arrow(summary)
        assert isinstance(current, pl.DataFrame) and isinstance(added, pl.DataFrame)
        self.engine.upsert("wh.instruments", merge_instruments(current, added).to_arrow())

    def _store_position(self, position: StreamPosition) -> None:
        """Offsets go into the same transaction as the rows: both or neither survive a crash."""
        now = datetime.now(UTC).replace(tzinfo=None)
        rows = pa.table({
            "group_id": [position.group] * len(position.ranges),
            "topic": [position.topic] * len(position.ranges),
            "partition": pa.array(list(position.ranges), pa.int32()),
            "next_offset": pa.array([last + 1 for _, last in position.ranges.values()], pa.int64()),
            "updated_at": pa.array([now] * len(position.ranges), pa.timestamp("us")),
        })  # fmt: skip
        self.engine.upsert("wh.kafka_offsets", rows)
        if position.state:
            names = sorted(position.state)
            state = pa.table({
                "group_id": [position.group] * len(names),
                "topic": [position.topic] * len(names),
                "component": names,
                "data": pa.array([position.state[n] for n in names], pa.binary()),
                "updated_at": pa.array([now] * len(names), pa.timestamp("us")),
            })  # fmt: skip
            self.engine.upsert("wh.stream_state", state)

    def stored_offsets(self, group: str, topic: str) -> dict[int, int] | None:
        try:
            table = queries.load("kafka_offsets", internal=True).run(self.engine, {"group_id": group, "topic": topic})
        finally:
            self._release()
        return {int(r["partition"]): int(r["next_offset"]) for r in table.to_pylist()}

    def stored_state(self, group: str, topic: str) -> dict[str, bytes]:
        try:
            table = queries.load("stream_state", internal=True).run(self.engine, {"group_id": group, "topic": topic})
        finally:
            self._release()
        return {str(r["component"]): bytes(r["data"]) for r in table.to_pylist()}

    def _begin(self) -> None:
        self.engine.begin()

    def _commit(self) -> None:
        self.engine.commit()

    def _rollback(self) -> None:
        self.engine.rollback()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
