from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from warehouse.errors import UnsupportedSQLError
from warehouse.sql import queries
from warehouse.sql.translate import clickhouse_to_duckdb


def test_stddev_pop_translates_to_a_function_duckdb_has() -> None:
    sql = clickhouse_to_duckdb("SELECT stddevPop(x) AS a, stddevPopStable(x) AS b FROM t")
    assert "STDDEVPOP" not in sql.upper().replace("STDDEV_POP", "")
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1.0), (2.0), (4.0)) v(x)")
    a, b = con.execute(sql).fetchone()
    assert a == pytest.approx(1.247219128924647) and b == a


def test_unknown_function_raises() -> None:
    with pytest.raises(UnsupportedSQLError, match="fooBar"):
        clickhouse_to_duckdb("SELECT fooBar(x) FROM t")


def test_parameters_stay_parameters() -> None:
    sql = clickhouse_to_duckdb("SELECT * FROM t WHERE symbol = {symbol:String} LIMIT {n:UInt64}")
    assert "$symbol" in sql and "$n" in sql


def test_every_query_file_parses_and_translates() -> None:
    names = [q.name for q in queries.list_queries()]
    assert "zscore" in names
    for q in queries.list_queries():
        q.sql_for("duckdb")
        for p in q.params:
            assert p.type


def test_parameter_coercion_rejects_bad_values() -> None:
    from warehouse.errors import QueryError

    q = queries.load("zscore")
    assert q.bind({"symbol": "BTC"}) == {
        "symbol": "BTC",
        "exchange": "",
        "window": 60,
        "limit": 100,
        "since": datetime(1970, 1, 1),
    }  # '' is the empty string; DateTime defaults bind as naive UTC
    with pytest.raises(QueryError):
        q.bind({"symbol": "BTC", "window": "-1"})
    with pytest.raises(QueryError):
        q.bind({})
