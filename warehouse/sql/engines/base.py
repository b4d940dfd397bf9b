"""The engine adapter interface: what every engine offers, and what each one does its own way.

Everything above warehouse/sql/engines/ talks to an `Engine`: `query` (Arrow out, SQL in the
engine's own dialect, values bound), `command`, `insert`, and the writes whose SQL differs
per engine — `delete_in` (rows whose column is in a list), `replace_day` (swap one UTC day
of a table atomically), `upsert` — plus `transaction()`. Capability flags say what an
engine can promise (`transactional`: several statements commit together), so callers never
ask which class they hold. Table names are checked against the schema definitions
(`checked_table`): identifiers never come from input. Driver exceptions are translated into
the WarehouseError tree by type and code inside each adapter.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import pyarrow as pa

from warehouse.errors import ConfigError
from warehouse.records import LEDGER_SCHEMAS, MATERIALIZED_SCHEMAS, SCHEMAS

EngineName = Literal["duckdb", "clickhouse", "questdb"]
ENGINES: tuple[EngineName, ...] = ("duckdb", "clickhouse")  # "all": the warehouse engines (QuestDB only by name)

# tables wh writes: the schema definitions, plus its own bookkeeping and staging tables
_TABLES = frozenset({*SCHEMAS, *LEDGER_SCHEMAS, *MATERIALIZED_SCHEMAS, "kafka_offsets", "stream_state",
                     "schema_migrations", "instruments", "quote_zscores", *(f"{t}_stage" for t in MATERIALIZED_SCHEMAS)})  # fmt: skip
# a ClickHouse cluster's shard-local tables under the Distributed ones (ddl/clickhouse_cluster)
_TABLES |= {f"{t}_local" for t in _TABLES - {"schema_migrations", "kafka_offsets", "stream_state"}}
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


def checked_table(table: str) -> str:
    """`wh.<name>` for a table wh defines; anything else is a programming error, refused."""
    schema, _, name = table.partition(".")
    if schema != "wh" or name not in _TABLES:
        raise ConfigError(f"not a warehouse table: {table!r}")
    return table


def checked_column(column: str) -> str:
    if not _COLUMN.match(column):
        raise ConfigError(f"not a column name: {column!r}")
    return column


class Engine(ABC):
    name: ClassVar[EngineName]
    transactional: ClassVar[bool]  # several statements can commit (or roll back) together
    partitioned_by_day: ClassVar[bool]  # replace_day swaps a partition (else: delete + insert)

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table: ...

    @abstractmethod
    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        """A large result as Arrow record batches, never held whole."""

    @abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    @abstractmethod
    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Append rows; `dedup_token`: an engine that can drop a retried identical insert does."""

    @abstractmethod
    def delete_in(self, table: str, column: str, values: list[str]) -> None:
        """Delete the rows whose `column` is one of `values` (visible at once)."""

    @abstractmethod
    def replace_day(self, table: str, day_column: str, day: date, data: pa.Table) -> None:
        """Make `data` the whole content of one UTC day of `table`, atomically for readers."""

    def upsert(self, table: str, data: pa.Table) -> None:
        raise ConfigError(f"{self.name} keeps no keyed bookkeeping tables (upsert into {table})")

    @property
    def ddl_name(self) -> str:
        """The folder of ddl/ this engine's migrations come from."""
        return self.name

    def ddl_targets(self) -> list[tuple[Engine, dict[str, str]]]:
        """Where `wh migrate` applies the migrations, each with the values of the files'
        placeholders (ClickHouse clusters: every node, or ON CLUSTER); the caller closes the
        engines that are not this one."""
        return [(self, {})]

    def begin(self) -> None:  # noqa: B027 — engines without transactions: each statement stands alone
        """Start a transaction where the engine has them."""

    def commit(self) -> None:  # noqa: B027 — without transactions: nothing to commit
        """Commit where the engine has transactions."""

    def rollback(self) -> None:  # noqa: B027 — without transactions: nothing to undo (writes are idempotent)
        """Roll back where the engine has transactions; never raises."""

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def utc_timestamps(table: pa.Table) -> pa.Table:
    """Naive timestamps coming back from DuckDB are UTC by convention: say so in the type."""
    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            fields.append(pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable))
            changed = True
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)) if changed else table


def naive_timestamps(table: pa.Table) -> pa.Table:
    """UTC-aware ns timestamps → naive ns, so DuckDB stores TIMESTAMP_NS without loss."""
    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            fields.append(pa.field(f.name, pa.timestamp(f.type.unit), f.nullable))
            changed = True
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)) if changed else table


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
