"""Analysts' SQL (`wh sql`): one read-only query over the warehouse's tables, with limits.

Two barriers, so that one mistake is not enough:

1. The statement is parsed with sqlglot and refused unless it is exactly one query
   (SELECT / UNION / WITH …) whose every table is `wh.<table>` or a CTE of the query:
   no writes, DDL, SET, ATTACH, COPY, PRAGMA or SYSTEM; no table functions (`file()`,
   `url()`, `remote()`, `read_csv()`, `numbers()`, …) and no file paths as tables; no
   SETTINGS / FORMAT / INTO clauses.
2. It runs on connections that cannot write: DuckDB opened `read_only=True` with
   `enable_external_access=false` and a locked configuration; ClickHouse with the query's
   own `SETTINGS … readonly = 1` (applied per query, also on the in-process engine, where
   a session-level SET would stick to the process).

Limits: `max_rows` (the query gets `LIMIT max_rows + 1`; more rows is an error, not a
silent cut) and `timeout` seconds (DuckDB: interrupt; ClickHouse: max_execution_time).
ClickHouse-dialect SQL runs on DuckDB through warehouse/sql/translate.py, the layer the
named queries use; DuckDB-dialect SQL runs on ClickHouse through plain sqlglot.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from warehouse.config import Settings
from warehouse.errors import QueryError, RefusedSQLError, UnsupportedSQLError
from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine
from warehouse.sql.translate import clickhouse_to_duckdb

DIALECTS = ("clickhouse", "duckdb")
_SOURCES = (exp.Table, exp.Subquery, exp.Values, exp.Unnest)
# Functions that reach outside the warehouse even where a plain SELECT may call them
# (ClickHouse's scalar file() reads a file under readonly=1, measured) — refused anywhere.
_OUTSIDE = frozenset({
    "file", "url", "s3", "s3cluster", "hdfs", "remote", "remotesecure", "cluster", "clusterallreplicas",
    "mysql", "postgresql", "jdbc", "odbc", "sqlite", "mongodb", "redis", "azureblobstorage", "gcs",
    "executable", "input", "catboostevaluate", "read_csv", "read_csv_auto", "read_parquet", "read_json",
    "read_json_auto", "read_text", "read_blob", "glob", "getenv", "sniff_csv", "parquet_scan",
})  # fmt: skip
_OUTSIDE_PREFIXES = ("dictget", "dicthas", "joinget", "filesystem")


def check(sql: str, dialect: str) -> exp.Query:
    """The parsed query, or RefusedSQLError saying what is not allowed."""
    if dialect not in DIALECTS:
        raise RefusedSQLError(f"--dialect {dialect!r}: use clickhouse or duckdb")
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # sqlglot warns when it falls back to a raw Command
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise RefusedSQLError(f"cannot parse the statement as {dialect} SQL: {str(exc).splitlines()[0]}") from exc
    finally:
        quiet.setLevel(level)
    if len(statements) != 1:
        raise RefusedSQLError(f"one statement at a time, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
        raise RefusedSQLError(f"only queries (SELECT …) are allowed, not {kind}: wh sql is read-only")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for node in tree.walk():
        if isinstance(node, exp.Select):
            for clause in ("settings", "format", "into"):
                if node.args.get(clause):
                    raise RefusedSQLError(f"a {clause.upper()} clause is not allowed in wh sql")
        if isinstance(node, (exp.From, exp.Join)):
            source = node.this
            if not isinstance(source, _SOURCES):
                raise RefusedSQLError(f"cannot read from {source.sql(dialect)!r}: only wh.<table> and CTEs")
        if isinstance(node, exp.Table):
            _check_table(node, ctes, dialect)
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)) else node.sql_name()).lower()
            if name in _OUTSIDE or name.startswith(_OUTSIDE_PREFIXES):
                raise RefusedSQLError(f"{name}() reaches outside the warehouse and is not allowed in wh sql")
    return tree


def _check_table(table: exp.Table, ctes: set[str], dialect: str) -> None:
    text = table.sql(dialect)
    if not isinstance(table.this, exp.Identifier):
        raise RefusedSQLError(f"table functions are not allowed ({text}): only wh.<table> and CTEs")
    if table.args.get("catalog") is not None:
        raise RefusedSQLError(f"{text}: only tables of the wh database")
    db = table.db.lower()
    if db == "wh":
        return
    if not db and table.name.lower() in ctes and not table.this.quoted:
        return
    raise RefusedSQLError(f"{text}: only tables of the wh database (write wh.trades, wh.market_ticks, …) and CTEs")


def _with_limit(tree: exp.Query, rows: int) -> exp.Query:
    if isinstance(tree, exp.Select):
        return tree if tree.args.get("limit") else tree.limit(rows, copy=True)
    return exp.select("*").from_(tree.subquery("_wh_sql")).limit(rows)


def to_engine_sql(tree: exp.Query, dialect: str, engine: str, max_rows: int) -> str:
    tree = _with_limit(tree, max_rows + 1)
    if engine == dialect:
        return tree.sql(dialect=dialect)
    if dialect == "clickhouse":
        return clickhouse_to_duckdb(tree.sql(dialect="clickhouse"))
    try:
        return tree.sql(dialect=engine, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise UnsupportedSQLError(f"cannot translate to {engine}: {exc}") from exc


def run(sql: str, *, dialect: str, engine: str, settings: Settings, max_rows: int = 100_000,
        timeout: float = 60.0) -> pa.Table:  # fmt: skip
    """Check, translate and run one read-only query on `engine`; the result as Arrow."""
    tree = check(sql, dialect)
    text = to_engine_sql(tree, dialect, engine, max_rows)
    if engine == "duckdb":
        table = _run_duckdb(text, settings, timeout)
    elif engine == "clickhouse":
        table = _run_clickhouse(text, settings, timeout, max_rows)
    else:
        raise RefusedSQLError(f"--engine {engine!r}: use duckdb or clickhouse")
    if table.num_rows > max_rows:
        raise RefusedSQLError(f"the result has more than {max_rows:,} rows; add a LIMIT or raise --max-rows")
    return table


def _run_duckdb(text: str, settings: Settings, timeout: float) -> pa.Table:
    eng = DuckDBEngine(settings.duckdb_path, read_only=True, wait=settings.lock_wait_seconds,
                       config={"enable_external_access": False, "lock_configuration": True})  # fmt: skip
    timer = threading.Timer(timeout, eng.con.interrupt)
    timer.start()
    try:
        return eng.query(text)
    except QueryError as exc:
        if "INTERRUPT" in str(exc).upper():
            raise RefusedSQLError(f"the query ran longer than {timeout:g} s (--timeout)") from exc
        raise
    finally:
        timer.cancel()
        eng.close()


def _run_clickhouse(text: str, settings: Settings, timeout: float, max_rows: int) -> pa.Table:
    # readonly last: once it is on, the same clause could not change anything else
    clause = (f"\nSETTINGS max_execution_time = {float(timeout)!r}, max_result_rows = {int(max_rows) + 1}, "
              "result_overflow_mode = 'throw', readonly = 1")  # fmt: skip
    # the reader of a local server; readonly=1 comes last in the clause, not with every query
    eng = ClickHouseEngine(settings, read_only=True, per_query_readonly=False)
    try:
        return eng.query(text + clause)
    except QueryError as exc:
        msg = str(exc)
        if "TIMEOUT_EXCEEDED" in msg:
            _drain(eng)
            raise RefusedSQLError(f"the query ran longer than {timeout:g} s (--timeout)") from exc
        if "READONLY" in msg:
            raise RefusedSQLError(f"refused by ClickHouse's read-only mode: {msg}") from exc
        raise
    finally:
        eng.close()


def _drain(eng: ClickHouseEngine) -> None:
    """After a timed-out query the in-process engine (chdb 4.4 via clickhouse-connect) hands the
    next Arrow result a corrupt buffer once (measured: "Invalid flatbuffers message", then fine).
    Take that hit here, on a throwaway query, instead of the caller's next query."""
    if eng.is_server:
        return
    with contextlib.suppress(Exception):  # the expected one-off failure
        eng.client.query_arrow("SELECT 1")
