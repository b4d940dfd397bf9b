"""QuestDB sink, the hot tier: quotes, trades and rejects over ILP/HTTP (warehouse/sql/engines/questdb.py).

Idempotent without an anti-join: the tables carry `DEDUP UPSERT KEYS` (ddl/questdb/001_ticks.sql),
so a batch written again — a retry, a replay after a crash, a second import of a file —
replaces its own rows instead of adding them. Each table of a batch is one ILP/HTTP request,
one transaction; tables are independent (a crash between two leaves the first written, and
the replay rewrites it identically). Rejects go last, so they can carry the rows QuestDB
refused in the same batch.

A refused row (HTTP 400 naming a line: a type conflict, a value outside its column's range)
does not stop the batch. The request stored nothing; the sink re-sends the rows before the
named line as one request, files that line as a `wh.rejects` row (rule `questdb_refused`,
QuestDB's text as the reason, the ILP line as `raw`, `source` = `questdb:<table>` and a
`source_offset` hashed from the row's values, so a replay files it once), and goes on with the rest,
halved, so k refused rows among n cost about k·log2(n) requests. More than
`max_refused` refused rows in one batch (default 1,000) looks like a table whose schema is
not wh's: the write fails as a SinkError (the stream consumer pauses and retries; nothing is
lost, nothing is committed). Any other failure — 5xx after the client's own retries, a
refused connection, a timeout, a missing table — is a SinkError too.

Counts: `stored` is the rows QuestDB accepted in this write (a replayed row counts again:
QuestDB does not say whether an upsert replaced a row); `existing` is always 0.
gaps and stream_losses are not kept in the hot tier (DuckDB and ClickHouse hold them).

The sink never creates tables (ILP's auto-create is off on the servers wh starts): opening it
checks that every migration of ddl/questdb/ is applied and that the tables have wh's columns,
else ConfigError naming `wh migrate --engine questdb`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.config import Settings
from warehouse.errors import ConfigError, QueryError, RowRefusedError, SinkError
from warehouse.records import REJECT_SCHEMA, SCHEMAS, bounded_raw
from warehouse.sinks.base import SinkBase, StreamPosition, WriteBatch, WriteCounts, prepare
from warehouse.sql.engines.questdb import HOT_TABLES, SYMBOL_COLUMNS, QuestDBEngine, ilp_text, qdb_table

KIND = {"market_ticks": "quote", "trades": "trade"}
REFUSED_RULE = "questdb_refused"


class QuestDBSink(SinkBase):
    name = "questdb"
    keeps_offsets = False

    def __init__(self, settings: Settings | None = None, *, engine: QuestDBEngine | None = None,
                 max_refused: int = 1_000) -> None:  # fmt: skip
        self.engine = engine or QuestDBEngine()
        self.max_refused = max_refused
        try:
            check_schema(self.engine)
        except BaseException:
            self.engine.close()
            raise

    def write(self, batch: WriteBatch, position: StreamPosition | None = None) -> WriteCounts:
        counts = WriteCounts()
        refused: list[pa.Table] = []
        for table in HOT_TABLES:
            data = batch.get(table)
            extra = refused if table == "rejects" else []
            if (data is None or data.num_rows == 0) and not extra:
                continue
            parts = [reject_rows(prepare(table, data))] if data is not None and data.num_rows else []
            data = pa.concat_tables(parts + extra)
            stored, bad = self._send(table, data)
            counts.stored[table] = stored
            counts.existing[table] = 0
            if bad:
                if table == "rejects":
                    raise SinkError("questdb", f"{qdb_table('wh.rejects')} refused {len(bad)} reject row(s): "
                                    f"{bad[0][1]} — its schema is not wh's; run `wh migrate --engine questdb`")  # fmt: skip
                refused.append(refused_rejects(table, bad))
        return counts

    def _send(self, table: str, data: pa.Table) -> tuple[int, list[tuple[pa.Table, str]]]:
        """Write `data`; rows QuestDB refuses come back with its text, the rest are stored.

        The server stops at the first bad line and names it: the rows before it are sent as one
        request, the line is set aside, the rows after it are halved (an unnamed refusal halves
        the whole part), so many refused rows do not resend the same tail over and over."""
        stored = 0
        bad: list[tuple[pa.Table, str]] = []
        todo = [data]  # a stack: the last item is the next part, in row order
        while todo:
            part = todo.pop()
            if part.num_rows == 0:
                continue
            try:
                self.engine.insert(f"wh.{table}", part)
                stored += part.num_rows
                continue
            except RowRefusedError as exc:
                if part.num_rows == 1:
                    bad.append((part, exc.detail))
                    if len(bad) > self.max_refused:
                        raise SinkError("questdb", f"{qdb_table(f'wh.{table}')} refused more than "
                                        f"{self.max_refused:,} rows of one batch (first: {bad[0][1]}); its schema "
                                        "is probably not wh's — fix it (wh migrate --engine questdb); consumption "
                                        "is paused, nothing is committed") from None  # fmt: skip
                    continue
                line = exc.line
                if line is not None and 1 <= line <= part.num_rows:
                    i = line - 1
                    tail = part.slice(i + 1)
                    half = tail.num_rows // 2
                    todo += [tail.slice(half), tail.slice(0, half), part.slice(i, 1), part.slice(0, i)]
                else:
                    half = part.num_rows // 2
                    todo += [part.slice(half), part.slice(0, half)]
        return stored, bad

    def close(self) -> None:
        self.engine.close()


def reject_rows(data: pa.Table) -> pa.Table:
    """wh.rejects rows for QuestDB: the designated timestamp cannot be NULL; a reject without an
    event time (an unreadable message) is filed at the epoch (ddl/questdb/001_ticks.sql)."""
    if data.schema != REJECT_SCHEMA or data.column("timestamp").null_count == 0:
        return data
    ts = data.column("timestamp")
    epoch = pa.scalar(0, pa.int64()).cast(ts.type)
    return data.set_column(data.schema.get_field_index("timestamp"), data.schema.field("timestamp"),
                           pc.fill_null(ts, epoch))  # fmt: skip


def refused_rejects(table: str, bad: list[tuple[pa.Table, str]]) -> pa.Table:
    """Rows QuestDB refused → wh.rejects rows (deterministic key: a replay files each once)."""
    now = datetime.now(UTC)
    rows = []
    for row, detail in bad:
        line = ilp_text(f"wh.{table}", row).rstrip("\n")  # for people: ILP v1 text (field times in µs)
        r = row.to_pylist()[0]
        key = json.dumps([table, *(r[c] for c in row.column_names)], default=str, ensure_ascii=False)
        digest = hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).digest()
        rows.append({
            "rejected_at": now, "source": f"questdb:{qdb_table(f'wh.{table}')}",
            "source_offset": int.from_bytes(digest[:8], "big") >> 1, "kind": KIND.get(table, table),
            "rule": REFUSED_RULE, "reason": f"QuestDB refused the row: {detail}"[:4096],
            "exchange": r.get("exchange"), "symbol": r.get("symbol"), "timestamp": r.get("timestamp"),
            "raw": bounded_raw(line.encode()),
        })  # fmt: skip
    return reject_rows(pa.Table.from_pylist(rows, schema=REJECT_SCHEMA))


def check_schema(engine: QuestDBEngine) -> None:
    """Refuse to write unless ddl/questdb/ is fully applied and the tables have wh's columns."""
    from warehouse.sql.migrate import applied, discover

    hint = f"run `wh migrate --engine questdb` (QuestDB at {engine.where})"
    try:
        done = applied(engine)
    except QueryError as exc:
        raise ConfigError(f"QuestDB has no wh tables yet: {hint}") from exc
    missing = [m.name for m in discover("questdb") if m.version not in done]
    if missing:
        raise ConfigError(f"QuestDB lacks migration(s) {', '.join(missing)}: {hint}")
    present = engine.tables()
    for table in HOT_TABLES:
        cols = present.get(f"wh.{table}")
        if cols is None:
            raise ConfigError(f"QuestDB has no table {qdb_table(f'wh.{table}')}: {hint}")
        want = set(SCHEMAS[table].names)
        lacking = sorted(want - set(cols))
        if lacking:
            raise ConfigError(f"{qdb_table(f'wh.{table}')} lacks column(s) {', '.join(lacking)}: {hint}")
        not_symbol = [c for c in SYMBOL_COLUMNS[table] if cols.get(c) != "SYMBOL"]
        if not_symbol:
            raise ConfigError(f"{qdb_table(f'wh.{table}')}: {', '.join(not_symbol)} should be SYMBOL columns: {hint}")
