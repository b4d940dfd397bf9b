"""DuckDB: the warehouse file $WH_HOME/warehouse.duckdb, one process writing at a time.

Transactional: a batch's tables, its stream offsets and state commit together; a day of
a materialized table is swapped by DELETE + INSERT in one transaction. Driver errors are
translated by exception class (CatalogException, BinderException, IOException…).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from warehouse.errors import ConfigError, QueryError, SinkError
from warehouse.sql.engines.base import (
    Engine,
    EngineName,
    checked_column,
    checked_table,
    naive_timestamps,
    utc_timestamps,
)


class DuckDBEngine(Engine):
    name: ClassVar[EngineName] = "duckdb"
    transactional: ClassVar[bool] = True
    partitioned_by_day: ClassVar[bool] = False

    def __init__(self, path: Path | str, *, read_only: bool = False, wait: float = 0.0,
                 config: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        """Open the file; while another process holds it, retry for up to `wait` seconds.

        DuckDB allows one process per file when one writes. `wh ingest` holds the file only
        while it flushes a batch (tens of ms every batch), so readers get in between.
        """
        import duckdb

        self._duckdb = duckdb
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise ConfigError(f"no DuckDB warehouse at {self.path}; run `wh migrate` or `wh demo`")
        connect_config = {k: v for k, v in (config or {}).items() if k != "lock_configuration"}
        deadline = time.monotonic() + wait
        pause = 0.02
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=read_only, config=connect_config)
                break
            except duckdb.IOException as exc:  # the file is locked by another process (or unreadable)
                locked = "lock" in str(exc).lower()
                if locked and time.monotonic() < deadline:
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 0.25)
                    continue
                hint = ""
                if locked:
                    hint = (
                        f" — another process holds the warehouse (waited {wait:.0f} s); DuckDB allows "
                        "one writer per file: a running `wh import`/`wh generate` must finish first"
                    )
                raise SinkError("duckdb", f"cannot open {self.path}: {exc}{hint}") from exc
            except duckdb.Error as exc:
                raise SinkError("duckdb", f"cannot open {self.path}: {exc}") from exc
        self.con.execute("SET TimeZone = 'UTC'")
        if (config or {}).get("lock_configuration"):
            self.con.execute("SET lock_configuration = true")  # after our own settings: no SET from here on

    # -- errors -------------------------------------------------------------------------
    def _query_error(self, exc: BaseException) -> QueryError:
        msg = str(exc)
        if isinstance(exc, self._duckdb.CatalogException):
            msg += f" — the warehouse at {self.path} lacks this table: run `wh migrate` or `wh import`"
        elif isinstance(exc, self._duckdb.BinderException) and "not found" in msg:
            msg += f" — if the warehouse at {self.path} predates this version of wh, run `wh migrate`"
        return QueryError(f"duckdb: {msg}")

    def _hint(self, exc: BaseException) -> str:
        if "No space left" in str(exc):  # an IOException, or the commit that could not write
            return (
                f" — the disk holding {self.path.parent} is full: free space and run again (this batch was not stored)"
            )
        return ""

    # -- reads and statements -------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            rel = self.con.sql(sql, params=dict(params) if params else None)
            if rel is None:
                raise QueryError("duckdb: the statement returned no result set")
            return utc_timestamps(rel.to_arrow_table())
        except self._duckdb.Error as exc:
            raise self._query_error(exc) from exc

    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.con.sql(sql).to_arrow_reader(65_536)
        except self._duckdb.Error as exc:
            raise self._query_error(exc) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.con.execute(sql, dict(params) if params else None)
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"{exc}{self._hint(exc)}") from exc

    # -- writes ---------------------------------------------------------------------------
    def _from_view(self, verb: str, table: str, data: pa.Table) -> None:
        table = checked_table(table)
        view = "_wh_batch"
        self.con.register(view, naive_timestamps(data))
        try:
            cols = ", ".join(f'"{checked_column(c)}"' for c in data.column_names)
            self.con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM {view}")
        except self._duckdb.Error as exc:
            what = "insert into" if verb == "INSERT" else "upsert into"
            raise SinkError("duckdb", f"{what} {table} failed: {exc}{self._hint(exc)}") from exc
        finally:
            self._unregister(view)

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Append an Arrow table (DuckDB has no insert tokens: the sinks' anti-join is the dedup)."""
        if data.num_rows:
            self._from_view("INSERT", table, data)

    def upsert(self, table: str, data: pa.Table) -> None:
        """INSERT OR REPLACE by the table's primary key (wh.kafka_offsets, wh.stream_state)."""
        if data.num_rows:
            self._from_view("INSERT OR REPLACE", table, data)

    def delete_matching(self, table: str, data: pa.Table, columns: list[str], *, within: str | None = None) -> None:
        """Delete the rows of `table` equal to a row of `data` on `columns` (NULL equals NULL).
        `within`: a column of both whose [min, max] over `data` bounds the scan (zone maps)."""
        table = checked_table(table)
        view = "_wh_match"
        self.con.register(view, naive_timestamps(data.select(columns)))
        try:
            on = " AND ".join(
                f't."{checked_column(c)}" = v."{checked_column(c)}"' if not data.schema.field(c).nullable
                else f't."{checked_column(c)}" IS NOT DISTINCT FROM v."{checked_column(c)}"'
                for c in columns
            )  # fmt: skip
            if within is not None:
                w = checked_column(within)
                on += f' AND t."{w}" BETWEEN (SELECT min("{w}") FROM {view}) AND (SELECT max("{w}") FROM {view})'
            self.con.execute(f"DELETE FROM {table} AS t USING {view} AS v WHERE {on}")
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"delete from {table} failed: {exc}{self._hint(exc)}") from exc
        finally:
            self._unregister(view)

    def delete_in(self, table: str, column: str, values: list[str]) -> None:
        self.command(f"DELETE FROM {checked_table(table)} WHERE list_contains($values, {checked_column(column)})",
                     {"values": values})  # fmt: skip

    def replace_day(self, table: str, day_column: str, day: date, data: pa.Table) -> None:
        table, col = checked_table(table), checked_column(day_column)
        by_date = pa.types.is_date(data.schema.field(col).type)  # a DATE column, else a timestamp
        with self.transaction():
            if by_date:
                self.command(f"DELETE FROM {table} WHERE {col} = $day", {"day": day})
            else:
                since = datetime(day.year, day.month, day.day)
                self.command(f"DELETE FROM {table} WHERE {col} >= $since AND {col} < $until",
                             {"since": since, "until": since + timedelta(days=1)})  # fmt: skip
            self.insert(table, data)

    def _unregister(self, view: str) -> None:
        """After a failed statement DuckDB refuses everything but ROLLBACK ("Current transaction
        is aborted"): that must not replace the statement's own error."""
        with contextlib.suppress(self._duckdb.Error):
            self.con.unregister(view)

    # -- transactions ---------------------------------------------------------------------
    def begin(self) -> None:
        try:
            self.con.execute("BEGIN TRANSACTION")
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"cannot begin a transaction: {exc}") from exc

    def commit(self) -> None:
        try:
            self.con.execute("COMMIT")
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"commit failed: {exc}{self._hint(exc)}") from exc

    def rollback(self) -> None:
        """Roll back after an error; never raises. A failed COMMIT has already ended the
        transaction (DuckDB then says `cannot rollback - no transaction is active`), and that
        message would hide the error being handled (a full disk, for one)."""
        with contextlib.suppress(self._duckdb.Error):
            self.con.execute("ROLLBACK")

    def close(self) -> None:
        self.con.close()
