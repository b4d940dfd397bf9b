"""ClickHouse through clickhouse-connect: a server over HTTP, or the embedded engine (chdb).

No multi-statement transactions: each insert is its own part, idempotent by the sinks'
anti-join and, for stream batches, `insert_deduplication_token`; a day of a materialized
table is built in `<table>_stage` and swapped in with `REPLACE PARTITION` (atomic).
chdb allows one data path per process, so opening a second path closes the first client
(measured cost of a re-open: ~0.1 s). Driver errors are translated by ClickHouse's error
name (`UNKNOWN_TABLE`, `UNKNOWN_IDENTIFIER`, `ACCESS_DENIED`, …).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, ClassVar

import pyarrow as pa

from warehouse.config import ClickHouseAddress, Settings
from warehouse.errors import ConfigError, QueryError, SinkError
from warehouse.sql.engines.base import Engine, EngineName, checked_column, checked_table, first_line

_chdb_lock = threading.Lock()
_chdb_open: dict[str, Any] = {}  # path -> client; at most one entry (one chdb path per process)

_HINTS = {
    "UNKNOWN_DATABASE": "the warehouse at {where} has no tables yet: run `wh migrate` or `wh import`",
    "UNKNOWN_TABLE": "the warehouse at {where} has no tables yet: run `wh migrate` or `wh import`",
    "UNKNOWN_IDENTIFIER": "if the warehouse at {where} predates this version of wh, run `wh migrate`",
}


class ClickHouseEngine(Engine):
    name: ClassVar[EngineName] = "clickhouse"
    transactional: ClassVar[bool] = False
    partitioned_by_day: ClassVar[bool] = True

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
            raise SinkError(
                "clickhouse",
                f"cannot connect to {self.where}: {first_line(exc)} — is the server "
                "running? (WH_CLICKHOUSE_URL / WH_CLICKHOUSE_HOST; unset both for the embedded engine)",
            ) from exc
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
            local = local_server(settings)
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
                        f"cannot open the embedded engine at {path}: {first_line(exc)} — another process "
                        f"holds it (waited {settings.lock_wait_seconds:.0f} s); one process at a time can "
                        "open it: wait for a running `wh import`, or query while `wh ingest` serves it",
                    ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    @property
    def is_server(self) -> bool:
        return self._chdb_path is None

    def _explain(self, exc: BaseException) -> str:
        """The driver's first line, plus how to fix it when ClickHouse's error name says."""
        msg = first_line(exc)
        hint = _HINTS.get(str(getattr(exc, "name", "") or ""))
        if hint is None:  # older servers: the name only inside the text
            hint = next((h for n, h in _HINTS.items() if f"({n})" in msg), None)
        return f"{msg} — {hint.format(where=self.where)}" if hint else msg

    # -- reads and statements -------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            return self.client.query_arrow(sql, parameters=dict(params or {}), settings=self._settings or None)
        except self._errors as exc:
            raise QueryError(f"clickhouse: {self._explain(exc)}") from exc

    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        try:
            with self.client.query_arrow_stream(sql, settings=self._settings or None) as batches:
                yield from batches
        except self._errors as exc:
            raise QueryError(f"clickhouse: {self._explain(exc)}") from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self.client.command(sql, parameters=dict(params) if params else None)
        except self._errors as exc:
            raise SinkError("clickhouse", self._explain(exc)) from exc

    # -- writes ---------------------------------------------------------------------------
    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Append; with `dedup_token`, a retry of the same insert is dropped by the server (the
        tables set non_replicated_deduplication_window)."""
        if data.num_rows == 0:
            return
        table = checked_table(table)
        settings: dict[str, Any] = {"max_partitions_per_insert_block": 0}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        try:
            self.client.insert_arrow(table, data, settings=settings)
        except self._errors as exc:
            raise SinkError("clickhouse", f"insert into {table} failed: {self._explain(exc)}") from exc

    def delete_in(self, table: str, column: str, values: list[str]) -> None:
        """Lightweight DELETE: visible to the next query at once."""
        self.command(f"DELETE FROM {checked_table(table)} WHERE has({{values:Array(String)}}, {checked_column(column)})",
                     {"values": values})  # fmt: skip

    def replace_day(self, table: str, day_column: str, day: date, data: pa.Table) -> None:
        """Build the day in `<table>_stage`, then `REPLACE PARTITION` (tables partition by day);
        one refresh at a time per table (the stage is shared)."""
        table = checked_table(table)
        stage = checked_table(f"{table}_stage")
        partition = day.strftime("%Y%m%d")  # PARTITION BY toYYYYMMDD(...): eight digits, no input
        if data.num_rows == 0:
            self.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition}'")
            return
        self.command(f"TRUNCATE TABLE {stage}")
        self.insert(stage, data)
        self.command(f"ALTER TABLE {table} REPLACE PARTITION ID '{partition}' FROM {stage}")
        self.command(f"TRUNCATE TABLE {stage}")

    def close(self) -> None:
        # The embedded client stays open for the life of the process: re-opening costs
        # ~0.1 s and chdb keeps one path per process anyway. Servers: close the pool.
        if self.is_server:
            self.client.close()


def local_server(settings: Settings) -> str | None:
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
