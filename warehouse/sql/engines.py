"""Connections to the two engines behind one small interface.

`Engine.query(sql, params)` runs SQL *in the engine's own dialect* and returns Arrow;
`insert(table, arrow)` appends; `command(sql)` runs DDL. Driver exceptions are
translated here into `SinkError` / `QueryError`, so nothing above this module knows
about duckdb or clickhouse-connect exceptions.

ClickHouse is reached through clickhouse-connect in both modes: a server over HTTP when
configured, otherwise the embedded engine via the `chdb://` DSN. chdb allows one data
path per process, so opening a second path closes the first client (measured cost of a
re-open: ~0.1 s).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from warehouse.config import ClickHouseAddress, Settings
from warehouse.errors import ConfigError, QueryError, SinkError

EngineName = Literal["duckdb", "clickhouse"]
ENGINES: tuple[EngineName, ...] = ("duckdb", "clickhouse")


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


class Engine(Protocol):
    name: EngineName

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table: ...
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...
    def insert(self, table: str, data: pa.Table) -> None: ...
    def close(self) -> None: ...


class DuckDBEngine:
    name: EngineName = "duckdb"

    def __init__(self, path: Path | str, *, read_only: bool = False, wait: float = 0.0,
                 config: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        """Open the file; while another process holds it, retry for up to `wait` seconds.

        DuckDB allows one process per file when one writes. `wh ingest` holds the file only
        while it flushes a batch (tens of ms every batch), so readers get in between.
        """
        import duckdb

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
            except duckdb.Error as exc:
                locked = "lock" in str(exc).lower()
                if locked and time.monotonic() < deadline:
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 0.25)
                    continue
                hint = ""
                if locked:
                    hint = (f" — another process holds the warehouse (waited {wait:.0f} s); DuckDB allows "
                            "one writer per file: a running `wh import`/`wh generate` must finish first")
                raise SinkError("duckdb", f"cannot open {self.path}: {exc}{hint}") from exc
        self.con.execute("SET TimeZone = 'UTC'")
        if (config or {}).get("lock_configuration"):
            self.con.execute("SET lock_configuration = true")  # after our own settings: no SET from here on
        self._duckdb = duckdb

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            rel = self.con.sql(sql, params=dict(params) if params else None)
            if rel is None:
                raise QueryError("duckdb: the statement returned no result set")
            return utc_timestamps(rel.to_arrow_table())
        except self._duckdb.Error as exc:
            msg = str(exc)
            if "Catalog Error" in msg:
                msg += f" — the warehouse at {self.path} lacks this table: run `wh migrate` or `wh import`"
            elif "Binder Error" in msg and "not found" in msg:
                msg += f" — if the warehouse at {self.path} predates this version of wh, run `wh migrate`"
            raise QueryError(f"duckdb: {msg}") from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.con.execute(sql, dict(params) if params else None)
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", str(exc)) from exc

    def insert(self, table: str, data: pa.Table) -> None:
        """Append an Arrow table; identifiers come from records.py, never from input."""
        if data.num_rows == 0:
            return
        view = "_wh_insert_batch"
        self.con.register(view, naive_timestamps(data))
        try:
            cols = ", ".join(f'"{c}"' for c in data.column_names)
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view}")
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"insert into {table} failed: {exc}{self._hint(exc)}") from exc
        finally:
            self._unregister(view)

    def upsert(self, table: str, data: pa.Table) -> None:
        """INSERT OR REPLACE by the table's primary key."""
        view = "_wh_upsert_batch"
        self.con.register(view, data)
        try:
            cols = ", ".join(f'"{c}"' for c in data.column_names)
            self.con.execute(f"INSERT OR REPLACE INTO {table} ({cols}) SELECT {cols} FROM {view}")
        except self._duckdb.Error as exc:
            raise SinkError("duckdb", f"upsert into {table} failed: {exc}{self._hint(exc)}") from exc
        finally:
            self._unregister(view)

    def _unregister(self, view: str) -> None:
        """After a failed statement DuckDB refuses everything but ROLLBACK ("Current transaction
        is aborted"): that must not replace the statement's own error."""
        with contextlib.suppress(self._duckdb.Error):
            self.con.unregister(view)

    def _hint(self, exc: BaseException) -> str:
        if "No space left" in str(exc):
            return f" — the disk holding {self.path.parent} is full: free space and run again (this batch was not stored)"
        return ""

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


_chdb_lock = threading.Lock()
_chdb_open: dict[str, Any] = {}  # path -> client; at most one entry (one chdb path per process)


class ClickHouseEngine:
    name: EngineName = "clickhouse"

    def __init__(self, settings: Settings, *, read_only: bool = False, per_query_readonly: bool | None = None) -> None:
        """`read_only`: connect as the reader (local server) and send `readonly=1` with every
        query (servers); `per_query_readonly=False` keeps the reader but leaves `readonly` to
        the caller's own SETTINGS clause (`wh sql`, which sets limits before it)."""
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        self._errors: tuple[type[BaseException], ...] = (ClickHouseError,)
        address = settings.clickhouse_address()  # ConfigError (redacted) before anything connects
        self.where = settings.clickhouse_where()
        self.read_only = read_only
        self._chdb_path: str | None = None
        try:
            if address is not None:
                self.client = _connect(clickhouse_connect, address)
            else:
                self._open_local(settings, clickhouse_connect)
        except Exception as exc:  # driver errors, network errors from urllib3, chdb's lock
            if isinstance(exc, SinkError | ConfigError):
                raise
            raise SinkError("clickhouse", f"cannot connect to {self.where}: {_first_line(exc)} — is the server "
                            "running? (WH_CLICKHOUSE_URL / WH_CLICKHOUSE_HOST; unset both for the embedded engine)") from exc
        readonly = read_only if per_query_readonly is None else per_query_readonly
        self._settings: dict[str, Any] = {"readonly": 1} if readonly and self.is_server else {}

    def _open_local(self, settings: Settings, clickhouse_connect: Any) -> None:
        """Local mode: the server a running `wh ingest` started, else chdb in this process.

        While another process holds the data directory (an import, or an ingest's server
        shutting down), retry for up to WH_LOCK_WAIT_SECONDS.
        """
        deadline = time.monotonic() + settings.lock_wait_seconds
        pause = 0.05
        while True:
            local = _local_server(settings)
            if local is not None:
                self.where = f"{local} (local server over {settings.chdb_path.resolve()})"
                self.client = _connect(clickhouse_connect, _local_address(settings, local, read_only=self.read_only))
                return
            path = str(settings.chdb_path.resolve())
            settings.chdb_path.mkdir(parents=True, exist_ok=True)
            try:
                with _chdb_lock:
                    for other, client in list(_chdb_open.items()):
                        if other != path:
                            client.close()
                            del _chdb_open[other]
                    if path not in _chdb_open:
                        _chdb_open[path] = clickhouse_connect.get_client(dsn=f"chdb://{path}")
                    self.client = _chdb_open[path]
                self._chdb_path = path
                return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    raise SinkError(
                        "clickhouse",
                        f"cannot open the embedded engine at {path}: {_first_line(exc)} — another process "
                        f"holds it (waited {settings.lock_wait_seconds:.0f} s); one process at a time can "
                        "open it: wait for a running `wh import`, or query while `wh ingest` serves it",
                    ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    @property
    def is_server(self) -> bool:
        return self._chdb_path is None

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            return self.client.query_arrow(
                sql, parameters=dict(params or {}), settings=self._settings or None
            )
        except self._errors as exc:
            msg = _first_line(exc)
            if "UNKNOWN_DATABASE" in msg or "UNKNOWN_TABLE" in msg:
                msg += f" — the warehouse at {self.where} has no tables yet: run `wh migrate` or `wh import`"
            elif "UNKNOWN_IDENTIFIER" in msg:
                msg += f" — if the warehouse at {self.where} predates this version of wh, run `wh migrate`"
            raise QueryError(f"clickhouse: {msg}") from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.client.command(sql, parameters=dict(params) if params else None)
        except self._errors as exc:
            raise SinkError("clickhouse", _first_line(exc)) from exc

    def insert(self, table: str, data: pa.Table, settings: Mapping[str, Any] | None = None) -> None:
        if data.num_rows == 0:
            return
        try:
            self.client.insert_arrow(
                table,
                data,
                settings={"max_partitions_per_insert_block": 0, **(settings or {})},
            )
        except self._errors as exc:
            raise SinkError("clickhouse", f"insert into {table} failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        # The embedded client stays open for the life of the process: re-opening costs
        # ~0.1 s and chdb keeps one path per process anyway. Servers: close the pool.
        if self.is_server:
            self.client.close()


def _local_server(settings: Settings) -> str | None:
    """URL of a live local ClickHouse server for this WH_HOME, if one answers /ping."""
    import urllib.request

    f = settings.clickhouse_server_file
    if not f.is_file():
        return None
    url = f.read_text().strip()
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
            return url if r.read().strip() == b"Ok." else None
    except OSError:
        return None


def _local_address(settings: Settings, url: str, *, read_only: bool) -> ClickHouseAddress:
    """The local server as its reader (read-only engines) or writer, with the password that
    `wh ingest` left in $WH_HOME/clickhouse.secret (mode 0600)."""
    from urllib.parse import urlsplit

    from warehouse.sql.chserver import read_secret

    credentials = read_secret(settings.clickhouse_secret_file)
    user, password = credentials.login(read_only=read_only)
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ConfigError(f"{settings.clickhouse_server_file}: not a local server address")
    return ClickHouseAddress(scheme="http", host=parts.hostname, port=parts.port, username=user, password=password)


def _connect(clickhouse_connect: Any, address: ClickHouseAddress) -> Any:
    host = f"[{address.host}]" if ":" in address.host and not address.host.startswith("[") else address.host
    return clickhouse_connect.get_client(
        host=host,
        port=address.port,
        username=address.username,
        password=address.password.get_secret_value(),
        secure=address.secure,
        **({"database": address.database} if address.database else {}),
    )


def close_embedded() -> None:
    """Close the process's chdb client (tests and long-lived processes switching homes)."""
    with _chdb_lock:
        for client in _chdb_open.values():
            client.close()
        _chdb_open.clear()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_engine(name: str, settings: Settings, *, read_only: bool = False, for_replay: bool = False) -> Engine:
    """`for_replay`: DuckDB's buffer pool is capped (WH_REPLAY_MEMORY_LIMIT) so that streaming a long range
    does not keep every block it read (peak RSS from 1 M to 20 M replayed ticks: +370 MB uncapped,
    +27-34 MB at the default 32MB, at the same speed: a replay reads each block once)."""
    if name == "duckdb":
        config = {"memory_limit": settings.replay_memory_limit} if for_replay else None
        return DuckDBEngine(settings.duckdb_path, read_only=read_only, wait=settings.lock_wait_seconds, config=config)
    if name == "clickhouse":
        return ClickHouseEngine(settings, read_only=read_only)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


def engine_names(choice: str) -> list[EngineName]:
    if choice == "all":
        return list(ENGINES)
    if choice in ENGINES:
        return [choice]
    raise ConfigError(f"unknown engine {choice!r}; choose duckdb, clickhouse or all")
