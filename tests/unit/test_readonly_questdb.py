"""`wh sql --engine questdb`, barrier 1: the token check (no server needed). Barrier 2, the
read-only PG user, is tested against the real QuestDB in tests/integration/test_questdb.py."""

from __future__ import annotations

import pytest

from warehouse.errors import RefusedSQLError
from warehouse.sql.readonly_questdb import check

ACCEPTED = [
    "SELECT count() FROM wh.market_ticks",
    "select symbol, avg(bid) from wh_market_ticks sample by 1m fill(prev) align to calendar",
    "SELECT * FROM wh.market_ticks LATEST ON timestamp PARTITION BY symbol;",
    "WITH a AS (SELECT bid FROM wh.market_ticks), b AS (SELECT * FROM a) SELECT max(bid) FROM b",
    "SELECT t.price, q.bid FROM wh.trades t ASOF JOIN wh.market_ticks q ON (symbol)",
    "SELECT * FROM wh_trades t, wh_market_ticks q WHERE t.symbol = q.symbol LIMIT 3",
    "SELECT x FROM (SELECT 1 x) UNION ALL SELECT 2 x",
    "SELECT symbol FROM wh.rejects WHERE symbol IN (SELECT symbol FROM wh.trades)",
    "SELECT 'FROM sys.x; DROP TABLE t' AS text",  # inside a string: text, not SQL
    "SELECT bid -- FROM secrets\nFROM wh.market_ticks",
    "SELECT row_number() OVER (PARTITION BY symbol ORDER BY timestamp) FROM wh.trades",
    "SELECT CASE WHEN bid > 0 THEN 1 ELSE 0 END, cast(bid AS LONG), coalesce(seq, 0) FROM wh.market_ticks",
    'SELECT * FROM "wh_trades"',
    "WITH a AS (SELECT 1 x) SELECT * FROM (SELECT * FROM a) s JOIN a ON (x)",  # in scope in a subquery
    "SELECT * FROM wh_trades t JOIN wh_trades u ON t.symbol = u.symbol WHERE t.price IN (1, 2)",
]

REFUSED = [
    ("INSERT INTO wh_trades VALUES (1)", "only a query"),
    ("DROP TABLE wh_trades", "only a query"),
    ("wh_trades", "only a query"),  # QuestDB's bare-table query
    ("SELECT 1; DROP TABLE wh_trades", "one statement only"),
    ("", "no SQL statement"),
    ("  ;  ", "no SQL statement"),
    ("SELECT * FROM tables()", "tables() is not allowed"),
    ("SELECT * FROM sys.telemetry", "table sys.telemetry is not"),
    ("SELECT * FROM 'sys.telemetry'", "quoted string as a table"),
    ("SELECT * FROM wh_schema_migrations", "table wh_schema_migrations"),
    ("SELECT * FROM wh.schema_migrations", "table wh.schema_migrations"),
    ("SELECT * FROM (wh_schema_migrations)", "table wh_schema_migrations"),
    ("SELECT * FROM ((other_table))", "table other_table"),
    ("SELECT * FROM wh_trades, other_table", "table other_table"),
    ("SELECT * FROM wh_trades t, other_table o", "table other_table"),
    ("SELECT * FROM wh_trades JOIN other_table ON (symbol)", "table other_table"),
    ("SELECT * FROM wh_trades ASOF JOIN pg_catalog.pg_class", "table pg_catalog.pg_class"),
    ("SELECT * FROM wh_trades WHERE symbol IN (SELECT s FROM other_table)", "table other_table"),
    ("WITH a AS (other_table) SELECT * FROM a", "a query must follow"),
    ("SELECT * FROM wh_trades UNION other_table", "a query must follow"),
    ("SELECT * FROM wh_trades UNION ALL (other_table)", "a query must follow"),
    ("SELECT read_parquet('/etc/passwd')", "read_parquet() is not allowed"),
    ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet() is not allowed"),
    ("SELECT count() FROM long_sequence(1000000000)", "long_sequence() is not allowed"),
    ("SELECT * FROM wal_tables()", "wal_tables() is not allowed"),
    ("SELECT version()", "version() is not allowed"),
    ("SELECT pg_catalog.current_user()", "qualified names are refused"),
    ('SELECT "sum"(bid) FROM wh_trades', "is not allowed"),
    ("SELECT 'unterminated FROM wh_trades", "cannot read the SQL"),
    # found by review (each read a non-wh table on QuestDB 9.3.4 before the fix)
    ("SELECT * FROM wh_trades t JOIN wh_trades u ON t.symbol = u.symbol, other_table", "table other_table"),
    ("SELECT * FROM wh_trades t ASOF JOIN wh_market_ticks q ON (symbol), other_table", "table other_table"),
    ("SELECT E'\\', * FROM other_table --'", "table other_table"),  # QuestDB has no E'' escapes
    (
        "SELECT * FROM (WITH other_table AS (SELECT 1 x) SELECT * FROM other_table) a CROSS JOIN other_table",
        "table other_table",
    ),
    ("WITH other_table AS (SELECT * FROM other_table) SELECT * FROM other_table", "table other_table"),
    ("SELECT 1 x FROM wh_trades) CROSS JOIN (SELECT * FROM wh_trades", "unbalanced parentheses"),
    ("SELECT (1 FROM wh_trades", "unbalanced parentheses"),
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepted(sql: str) -> None:
    assert check(sql) == sql.strip().rstrip(";").rstrip()


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_refused(sql: str, message: str) -> None:
    with pytest.raises(RefusedSQLError, match=None) as info:
        check(sql)
    assert message in str(info.value), str(info.value)
