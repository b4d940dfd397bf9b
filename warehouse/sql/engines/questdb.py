"""QuestDB, the hot tier: SQL over HTTP `/exec` and `/exp`, rows over ILP/HTTP (`questdb` 6.0).

Names. QuestDB has no schemas: `wh.<table>` is the table `wh_<table>` there. The mapping
lives here and only here (`qdb_table`, `wh_table`, and `rewrite`, which maps the `wh.`
names of the tables QuestDB holds in SQL text given to `query`/`command`); the DDL files
(ddl/questdb/) and queries/questdb/ are QuestDB-only and use the `wh_` names themselves.
QuestDB holds `market_ticks`, `trades`, `rejects` (and its `schema_migrations`); the ledger,
materialized tables, gaps and stream bookkeeping live in DuckDB and ClickHouse.

Reads. `query` returns Arrow: `/exec` (JSON, `limit=1`) gives the column types, then `/exp`
streams the rows as CSV, which pyarrow parses typed. Measured on 500,000 rows × 7 columns
(QuestDB 9.3.4, loopback): /exec JSON → Arrow 4.1 s (json.loads alone 2.1-2.4 s), /exp CSV
→ Arrow 0.77 s. `/exp?fmt=parquet` (9.3.4) was faster still but wrong twice: it returned
`ORDER BY ts DESC` rows in ascending order, and a VARCHAR value as NULL on a DEDUP table.
/exec has no bound parameters: values given as `{name:Type}` (the ClickHouse placeholder
syntax of queries/) are rendered here as typed literals (strings quoted with `''`, control
characters refused; numbers checked finite; times as UTC literals), never by callers.

Writes. `insert` into a hot table is ILP over HTTP with auto-flush off: the rows go into a
`Buffer` (serialisation, testable offline) and one `flush(transactional=True)`, one request
holding one table = one transaction (all or nothing). HTTP 400 naming a line (a type
conflict, a value out of a column's range) → `RowRefusedError` with QuestDB's text and the
line; anything else (a missing table, 5xx after the client's own retries, a refused
connection, a timeout) → `SinkError`. `transactional=False`: statements never commit together.

Visibility. Tables are WAL tables: a committed write is durable at once but applied
asynchronously; `wait_applied` waits (bounded) until `wal_tables()` shows no pending
transaction, and fails on a suspended table.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import pyarrow as pa

from warehouse.config import QuestDBAddress, QuestDBSettings, get_questdb_settings, join_client_conf, split_client_conf
from warehouse.errors import ConfigError, QueryError, RowRefusedError, SinkError
from warehouse.sql.engines.base import Engine, EngineName, checked_table

# wh.<name> ↔ wh_<name>: the tables QuestDB holds (ddl/questdb/)
HOT_TABLES: tuple[str, ...] = ("market_ticks", "trades", "rejects")
QDB_TABLES: frozenset[str] = frozenset({*HOT_TABLES, "schema_migrations"})
# ILP symbols (SYMBOL columns in the DDL; a test checks they agree); every other column is a field
SYMBOL_COLUMNS: dict[str, tuple[str, ...]] = {
    "market_ticks": ("exchange", "symbol", "asset_class"),
    "trades": ("exchange", "symbol", "asset_class", "side"),
    "rejects": ("source", "kind", "rule", "exchange", "symbol"),
}
DESIGNATED = "timestamp"  # event time in every hot table, never server time

_WH_NAME = re.compile(r"\bwh\.(" + "|".join(sorted(QDB_TABLES)) + r")\b")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([A-Za-z0-9_(), ']+)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ILP_LINE = re.compile(r"error in line (\d+):\s*(.*)", re.DOTALL)
# 400s that are about the table or the request, not about one row: never a reject
_TABLE_LEVEL = ("table does not exist", "creating new tables is disabled", "column does not exist",
                "non-wal table", "table is dropped", "permission", "unauthorized", "authentication")  # fmt: skip

_CSV_TYPES: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(), "BYTE": pa.int8(), "SHORT": pa.int16(), "INT": pa.int32(), "LONG": pa.int64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "DATE": pa.timestamp("ms", tz="UTC"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"), "TIMESTAMP_NS": pa.timestamp("ns", tz="UTC"),
}  # fmt: skip  # anything else (SYMBOL, VARCHAR, STRING, CHAR, UUID, IPv4, arrays…) is text


def qdb_table(table: str) -> str:
    """`wh.market_ticks` → `wh_market_ticks` (checked: a table QuestDB holds, else ConfigError)."""
    name = checked_table(table).partition(".")[2]
    if name not in QDB_TABLES:
        raise ConfigError(f"QuestDB holds only the hot tier ({', '.join(f'wh.{t}' for t in HOT_TABLES)}); "
                          f"{table} lives in DuckDB and ClickHouse")  # fmt: skip
    return f"wh_{name}"


def wh_table(name: str) -> str:
    """`wh_market_ticks` → `wh.market_ticks` (the reverse of qdb_table)."""
    if not name.startswith("wh_") or name[3:] not in QDB_TABLES:
        raise ConfigError(f"not a warehouse table in QuestDB: {name!r}")
    return f"wh.{name[3:]}"


def rewrite(sql: str) -> str:
    """`wh.<table>` → `wh_<table>` outside quoted strings and identifiers, for the tables QuestDB holds."""
    out: list[str] = []
    for i, part in enumerate(re.split(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""", sql)):
        out.append(part if i % 2 else _WH_NAME.sub(lambda m: f"wh_{m.group(1)}", part))
    return "".join(out)


def literal(value: Any, type_: str) -> str:
    """One bound value as a QuestDB SQL literal of the declared placeholder type."""
    t = type_.strip()
    if value is None:
        return "NULL"
    if t.startswith("Array("):
        inner = t[len("Array(") : -1]
        items = list(value)
        if not items:
            raise QueryError("an empty list cannot be bound (QuestDB has no empty IN ())")
        return ", ".join(literal(v, inner) for v in items)  # for `IN ({values:Array(String)})`
    if t.startswith(("Int", "UInt")):
        if isinstance(value, bool) or not isinstance(value, int):
            value = int(value)
        return str(int(value))
    if t.startswith("Float"):
        f = float(value)
        if not math.isfinite(f):
            raise QueryError(f"a non-finite number cannot be bound: {value!r}")
        return repr(f)
    if t.startswith("DateTime") or t == "Date":
        if isinstance(value, datetime):
            when = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
            text = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(value, date):
            text = value.strftime("%Y-%m-%dT00:00:00.000000Z")
        else:
            raise QueryError(f"a {t} value must be a datetime or date, not {type(value).__name__}")
        return f"'{text}'::timestamp"
    if t == "String":
        s = str(value)
        if _CONTROL.search(s):
            raise QueryError("a bound string with control characters is refused (QuestDB /exec has no parameters)")
        return "'" + s.replace("'", "''") + "'"
    raise QueryError(f"unsupported parameter type {t} for QuestDB")


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    """Replace each `{name:Type}` with its value as a literal; a missing value is an error."""
    values = dict(params or {})

    def one(m: re.Match[str]) -> str:
        name, type_ = m.group(1), m.group(2)
        if name not in values:
            raise QueryError(f"parameter {name} ({type_}) has no value")
        return literal(values[name], type_)

    return _PLACEHOLDER.sub(one, sql)


def is_row_level(message: str) -> bool:
    return not any(s in message.lower() for s in _TABLE_LEVEL)


class QuestDBEngine(Engine):
    name: ClassVar[EngineName] = "questdb"
    transactional: ClassVar[bool] = False
    partitioned_by_day: ClassVar[bool] = False  # no replace_day: QuestDB holds no materialized tables

    def __init__(self, settings: QuestDBSettings | None = None, *, read_only: bool = False) -> None:
        self.settings = settings or get_questdb_settings()
        self.address: QuestDBAddress = self.settings.address()  # ConfigError (redacted) before anything connects
        self.where = self.address.where
        self.read_only = read_only
        self._sender: Any = None
        self._written: dict[str, int] = {}  # table → its QuestDB id when the sender was made or last wrote it
        headers = {"User-Agent": "wh"}
        if self.address.token is not None:
            headers["Authorization"] = f"Bearer {self.address.token.get_secret_value()}"
        elif self.address.username is not None and self.address.password is not None:
            import base64

            pair = f"{self.address.username}:{self.address.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._headers = headers
        self._ssl: ssl.SSLContext | None = None
        if self.address.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=self.address.tls_roots)
            if not self.address.tls_verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    # -- HTTP ------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, str], *, timeout: float | None = None) -> bytes:
        """One GET; QuestDB's refusal (4xx) → QueryError with its message; 5xx, a refused
        connection or a timeout → SinkError (retryable by the stream consumer)."""
        url = f"{self.address.http_url}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.settings.timeout, context=self._ssl) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            try:
                message = str(json.loads(body).get("error") or body)
            except ValueError:
                message = body.strip() or exc.reason
            if exc.code in (401, 403):
                raise SinkError("questdb", f"{self.where} refused the credentials in QDB_CLIENT_CONF "
                                f"(HTTP {exc.code})") from None  # fmt: skip
            if 400 <= exc.code < 500:
                raise QueryError(f"questdb: {self._explain(message)}") from None
            raise SinkError("questdb", f"{self.where} failed (HTTP {exc.code}): {message[:500]}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SinkError("questdb", f"cannot reach QuestDB at {self.where}: {reason} — is it running? "
                            "(QDB_CLIENT_CONF; `wh servers` starts one)") from None  # fmt: skip

    def _explain(self, message: str) -> str:
        text = message.strip()[:1000]
        if "table does not exist" in text.lower():
            return (f"{text} — the QuestDB at {self.where} lacks wh's tables: run `wh migrate --engine questdb` "
                    f"(QuestDB holds {', '.join(f'wh.{t}' for t in HOT_TABLES)} only)")  # fmt: skip
        return text

    def _exec(self, sql: str, **extra: str) -> dict[str, Any]:
        return dict(json.loads(self._get("/exec", {"query": sql, **extra})))

    # -- reads and statements ----------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        text = render(rewrite(sql), params)
        head = self._exec(text, limit="1", count="false")
        columns = head.get("columns")
        if not columns:  # a statement, not a result set
            return pa.table({})
        names = [str(c["name"]) for c in columns]
        types = [_CSV_TYPES.get(str(c["type"]).upper(), pa.string()) for c in columns]
        if not head.get("dataset"):
            return pa.schema(list(zip(names, types, strict=True))).empty_table()
        body = self._get("/exp", {"query": text})
        return _read_csv(body, names, types)

    def stream(self, sql: str) -> Iterator[pa.RecordBatch]:
        """QuestDB answers /exp in one response: the batches of that one table (a hot-tier
        read is recent and bounded; wh streams history from DuckDB or ClickHouse)."""
        yield from self.query(sql).to_batches(max_chunksize=65_536)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        if self.read_only:
            raise ConfigError("this QuestDB engine was opened read-only")
        try:
            self._exec(render(rewrite(sql), params))
        except QueryError as exc:
            raise SinkError("questdb", str(exc).removeprefix("questdb: ")) from None

    def tables(self) -> dict[str, dict[str, str]]:
        """wh.<table> → {column: QuestDB type} for the warehouse tables present."""
        out: dict[str, dict[str, str]] = {}
        rows = self._exec("SELECT table_name FROM tables()").get("dataset") or []
        for (name,) in rows:
            if isinstance(name, str) and name.startswith("wh_") and name[3:] in QDB_TABLES:
                quoted = "'" + name.replace("'", "''") + "'"  # a name from tables(), matching ^wh_[a-z_]+$
                cols = self._exec(f'SELECT "column", type FROM table_columns({quoted})').get("dataset") or []
                out[wh_table(name)] = {str(c): str(t) for c, t in cols}
        return out

    def wait_applied(self, tables: Iterable[str] = HOT_TABLES, timeout: float | None = None) -> None:
        """Until every named WAL table has applied all committed transactions (bounded)."""
        wanted = {qdb_table(t if t.startswith("wh.") else f"wh.{t}") for t in tables}
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.wal_wait)
        pending: dict[str, tuple[int, int]] = {}
        while True:
            rows = self._exec("SELECT name, suspended, writerTxn, sequencerTxn, errorMessage FROM wal_tables()")
            pending = {}
            for name, suspended, writer, sequencer, error in rows.get("dataset") or []:
                if name not in wanted:
                    continue
                if suspended:
                    raise SinkError("questdb", f"WAL table {name} is suspended at {self.where}: {error or '?'} "
                                    f"— `ALTER TABLE {name} RESUME WAL` after fixing the cause")  # fmt: skip
                if writer < sequencer:
                    pending[name] = (writer, sequencer)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise SinkError("questdb", f"WAL not applied within the wait at {self.where}: "
                                + ", ".join(f"{n} {w}/{s}" for n, (w, s) in sorted(pending.items())))  # fmt: skip
            time.sleep(0.05)

    # -- writes ------------------------------------------------------------------------------
    @property
    def sender(self) -> Any:
        """One ILP/HTTP sender for the engine's life; auto-flush off (one request per flush)."""
        if self._sender is None:
            from questdb import QuestDBError, Sender

            schema, pairs = split_client_conf(self.address.conf.get_secret_value())
            pairs = [(k, v) for k, v in pairs if not k.startswith("auto_flush")] + [("auto_flush", "off")]
            try:
                self._sender = Sender.from_conf(join_client_conf(schema, pairs))
                self._sender.establish()
            except QuestDBError as exc:
                self._sender = None
                raise SinkError("questdb", f"cannot open an ILP/HTTP sender to {self.where}: "
                                f"{_client_text(exc)}") from None  # fmt: skip
            try:
                self._written = self._table_ids()  # what this sender may write to, as it is now
            except BaseException:
                self.close()  # no sender without the ids it was made against
                raise
        return self._sender

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Hot tables: one ILP/HTTP request, one transaction (a retry is absorbed by DEDUP UPSERT
        KEYS: `dedup_token` is not needed). wh.schema_migrations: an INSERT over /exec."""
        if self.read_only:
            raise ConfigError("this QuestDB engine was opened read-only")
        if data.num_rows == 0:
            return
        name = qdb_table(table)
        if name == "wh_schema_migrations":
            self._insert_sql(name, data)
            return
        from questdb import QuestDBError

        self._same_table(name)
        buf = self.sender.new_buffer()
        ilp_rows(buf, table, data)
        try:
            self.sender.flush(buf, transactional=True)
        except QuestDBError as exc:
            raise self._translate_flush(name, exc) from None

    def _same_table(self, name: str) -> None:
        """QuestDB 9.3.4 loses, silently, the first ILP/HTTP transaction a sender sends to a table
        it wrote before that table was dropped and re-created (questdb/questdb#5803, open;
        reproduced here: 3 of 4 requests stored, every one answered 2xx). A new sender does not:
        so the table's id is compared with the one it had when this sender was made or last
        wrote it (one /exec per write), and a changed id gets a new sender. (A re-create between this check and the flush is
        not covered: that window is one HTTP round trip.)"""
        current = self._table_ids().get(name, -1)
        if self._sender is not None and self._written.get(name, current) != current:
            with contextlib.suppress(Exception):
                self._sender.close(flush=False)
            self._sender = None  # the next `self.sender` is new and notes the ids afresh
        elif self._sender is not None:
            self._written[name] = current

    def _table_ids(self) -> dict[str, int]:
        rows = self._exec("SELECT table_name, id FROM tables() WHERE table_name LIKE 'wh\\_%'").get("dataset") or []
        return {str(n): int(i) for n, i in rows}

    def _translate_flush(self, name: str, exc: Exception) -> SinkError:
        text = _client_text(exc)
        server = _server_json(text)
        if server is not None and server.get("code") == "invalid":
            message = str(server.get("message", ""))
            m = _ILP_LINE.search(message)
            detail = m.group(2).strip() if m else message
            line = int(server.get("line") or (m.group(1) if m else 0)) or None
            if line is not None and is_row_level(detail):
                return RowRefusedError("questdb", f"{name}: line {line} refused: {detail}", line=line, detail=detail)
            return SinkError("questdb", f"{name}: {self._explain(detail)}")
        return SinkError("questdb", f"write to {name} at {self.where} failed: {text[:500]}")

    def _insert_sql(self, name: str, data: pa.Table) -> None:
        """Small bookkeeping rows as INSERT … VALUES with typed literals (the column names are
        the table's own, from records/migrate, checked)."""
        types = {pa.types.is_integer: "Int64", pa.types.is_floating: "Float64", pa.types.is_timestamp: "DateTime64",
                 pa.types.is_string: "String"}  # fmt: skip
        cols = []
        for f in data.schema:
            kind = next((t for check, t in types.items() if check(f.type)), None)
            if kind is None or not re.fullmatch(r"[a-z_][a-z0-9_]*", f.name):
                raise ConfigError(f"cannot insert column {f.name} ({f.type}) into {name}")
            cols.append((f.name, kind))
        rows = ["(" + ", ".join(literal(row[c], k) for c, k in cols) + ")" for row in data.to_pylist()]
        self.command(f"INSERT INTO {name} ({', '.join(c for c, _ in cols)}) VALUES {', '.join(rows)}")

    def delete_in(self, table: str, column: str, values: list[str]) -> None:
        raise ConfigError(f"QuestDB keeps no rows that wh deletes (delete from {table}); the ledger lives in "
                          "DuckDB and ClickHouse")  # fmt: skip

    def replace_day(self, table: str, day_column: str, day: date, data: pa.Table) -> None:
        raise ConfigError(f"QuestDB keeps no materialized tables ({table}); `wh refresh` runs on DuckDB and ClickHouse")

    def close(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):  # a sender whose server went away: nothing left to release
                self._sender.close(flush=False)
            self._sender = None
            self._written.clear()


def ilp_rows(buf: Any, table: str, data: pa.Table) -> None:
    """Rows of `wh.<table>` into an ILP `Buffer` (symbols per SYMBOL_COLUMNS, `timestamp` as the
    designated time). pyarrow-backed pandas: nullable LONG stays LONG (NumPy would make it
    DOUBLE), a NULL is left out of its line (QuestDB stores NULL)."""
    import pandas as pd

    name = qdb_table(table)
    short = name[3:]
    df = data.to_pandas(types_mapper=pd.ArrowDtype)
    buf.dataframe(df, table_name=name, symbols=list(SYMBOL_COLUMNS[short]), at=DESIGNATED)


def ilp_text(table: str, data: pa.Table) -> str:
    """The rows as ILP text (protocol version 1: numbers in decimal, not binary), for people:
    the `raw` of a reject QuestDB refused, and the offline serialisation tests."""
    from questdb._client import Buffer  # 6.0 exports it only from the deprecated questdb.ingress

    buf = Buffer(protocol_version=1)
    ilp_rows(buf, table, data)
    return bytes(buf).decode("utf-8", errors="backslashreplace")


def _client_text(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _server_json(text: str) -> dict[str, Any] | None:
    """The server's JSON error inside the client's message (`Could not flush buffer: {…}`)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_csv(body: bytes, names: list[str], types: list[pa.DataType]) -> pa.Table:
    import pyarrow.csv as pacsv

    # small answers (the migrations' bookkeeping, a status count) are read on this thread: a
    # short-lived `wh` process that started pyarrow's CSV threads aborted at exit once in CI
    # ("terminate called without an active exception", apache/arrow#34314)
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24, use_threads=len(body) > 1 << 22)
    convert = pacsv.ConvertOptions(
        column_types=dict(zip(names, types, strict=True)),
        strings_can_be_null=True,  # a bare empty field is NULL …
        quoted_strings_can_be_null=False,  # … a quoted "" is the empty string
        true_values=["true"],
        false_values=["false"],
    )
    try:
        table = pacsv.read_csv(io.BytesIO(body), read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise QueryError(f"questdb: cannot read the /exp answer as typed CSV: {exc}") from exc
    return _unescape(table)


def _unescape(table: pa.Table) -> pa.Table:
    """/exp writes text fields with JSON escapes inside CSV quotes (measured on 9.3.4: a backslash
    as `\\\\`, a tab as `\\t`, a newline as `\\n`, U+0001 as `\\u0001`; a quote as CSV's `""`).
    Only values holding a backslash need decoding: they are found vectorized, decoded one by one."""
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if not pa.types.is_string(field.type):
            continue
        col = table.column(i)
        hit = pc.match_substring(col, "\\")
        if not pc.any(hit).as_py():
            continue
        values = col.to_pylist()
        for j in pc.indices_nonzero(pc.fill_null(hit, False)).to_pylist():
            values[j] = json.loads('"' + values[j].replace('"', '\\"') + '"')
        table = table.set_column(i, field, pa.array(values, field.type))
    return table
