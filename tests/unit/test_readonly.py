"""The `wh sql` parser barrier and the named-query header, without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse.errors import QueryError, RefusedSQLError
from warehouse.sql import queries, readonly


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM wh.trades",
        "WITH x AS (SELECT symbol FROM wh.trades) SELECT * FROM x",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT a.symbol FROM wh.trades AS a JOIN wh.market_ticks AS b ON a.symbol = b.symbol",
        "SELECT (SELECT count() FROM wh.fills) AS n",
        "SELECT * FROM (SELECT 1 AS a) AS t",
    ],
)
def test_queries_over_wh_tables_pass(sql: str) -> None:
    readonly.check(sql, "clickhouse")


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("INSERT INTO wh.trades SELECT * FROM wh.trades", "not INSERT"),
        ("DROP TABLE wh.trades", "not DROP"),
        ("SET readonly = 0", "not SET"),
        ("SYSTEM STOP MERGES", "not SYSTEM"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table functions"),
        ("SELECT * FROM wh.trades SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT * FROM wh.trades FORMAT CSV", "FORMAT"),
        ("SELECT * FROM system.tables", "only tables of the wh database"),
        ("SELECT * FROM trades", "only tables of the wh database"),
        ("WITH x AS (SELECT 1) SELECT * FROM y", "only tables of the wh database"),
        ("SELECT * FROM other.wh.trades", "only tables of the wh database"),
        ("SELEC * FROM wh.trades", "cannot parse"),
        ("SELECT file('/etc/passwd') AS x", r"function file\(\) is not allowed"),
        ("SELECT * FROM wh.trades WHERE symbol = file('/etc/hostname')", r"function file\(\) is not allowed"),
    ],
)
def test_everything_else_is_refused_with_a_reason(sql: str, says: str) -> None:
    with pytest.raises(RefusedSQLError, match=says):
        readonly.check(sql, "clickhouse")


def test_duckdb_file_scans_are_table_sources_and_refused() -> None:
    for sql in ("SELECT * FROM 'x.csv'", "SELECT * FROM read_parquet('x.parquet')", "COPY wh.trades TO 'x.csv'"):
        with pytest.raises(RefusedSQLError):
            readonly.check(sql, "duckdb")


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        # a CTE defined elsewhere does not unlock its name (the escape: DuckDB's settings)
        ("SELECT * FROM (WITH pg_settings AS (SELECT 1) SELECT 1) a, pg_settings", "pg_settings: only tables"),
        ("SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) a, duckdb_databases", "only tables"),
        ("WITH a AS (WITH t AS (SELECT 1) SELECT 1) SELECT * FROM a, t", "t: only tables"),
        ("WITH t AS (SELECT * FROM t) SELECT * FROM t", "only tables"),  # not RECURSIVE: t is the catalog's
        ("WITH a AS (SELECT * FROM t), t AS (SELECT 1) SELECT * FROM a", "only tables"),  # later CTE (DuckDB: catalog)
        ("WITH T AS (SELECT 1) SELECT * FROM t", "only tables"),  # ClickHouse names are case-sensitive
        ("(WITH t AS (SELECT 1) SELECT * FROM t) UNION ALL SELECT * FROM t", "only tables"),  # DuckDB: catalog
        ("WITH (SELECT 1) AS t SELECT * FROM t", "only tables"),  # a scalar WITH is not a table
        ("SELECT * FROM (SELECT 1 AS a) AS t, t", "only tables"),  # a derived table's alias is not a CTE
        ("SELECT * FROM wh.nothing", "not a table of the warehouse"),
        ("SELECT * FROM wh.kafka_offsets", "not a table of the warehouse"),
        # the right side of IN is a table reference
        ("SELECT 0 IN system.one", "IN system.one"),
        ("SELECT 0 IN (system.one)", "IN system.one"),
        ("SELECT 0 NOT IN ((system.one AS x))", "IN system.one"),
        ("SELECT 0 GLOBAL IN one", "IN one"),
        ("SELECT * FROM (WITH t AS (SELECT 1) SELECT 1) a WHERE 1 IN t", "IN t"),
        # columns qualified by another database
        ("SELECT system.one.dummy", "only tables of the wh database"),
        ("SELECT a.b.c.d FROM wh.trades AS a", "too many qualifiers"),
        # functions by allowlist, named in the message
        ("SELECT getServerSetting('path')", r"function getServerSetting\(\) is not allowed"),
        ("SELECT hasColumnInTable('system', 'one', 'dummy')", r"function hasColumnInTable\(\)"),
        ("SELECT currentDatabase()", r"function CURRENT_DATABASE\(\)"),
        ("SELECT joinGet('wh.trades', 'price', 'x')", r"function joinGet\(\)"),
        ("SELECT count() FROM wh.trades GROUP BY symbol HAVING max(price) > length(hostName())", "hostName"),
        ("SELECT sumIf(price, file('/x') = '') FROM wh.trades", r"function file\(\)"),
        ("SELECT fileIf(1)", r"function fileIf\(\)"),
        ("SELECT no_such_function(1)", r"function no_such_function\(\)"),
        # parser edges are refusals, not crashes
        ("SELECT " + "(" * 50 + "1" + ")" * 50, "nests too deeply"),
        ("SELECT map(1)", "cannot parse"),
    ],
)
def test_names_resolve_by_scope_and_functions_by_allowlist(sql: str, says: str) -> None:
    with pytest.raises(RefusedSQLError, match=says):
        readonly.check(sql, "clickhouse")


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT * FROM (WITH pg_settings AS (SELECT 1) SELECT 1) a, pg_settings", "only tables"),
        ("SELECT current_setting('secret_directory')", r"function current_setting\(\)"),
        ("SELECT getenv('HOME')", r"function getenv\(\)"),
        ("SELECT * FROM wh.trades AS t, LATERAL (SELECT * FROM pg_settings) AS s", "only tables"),
        ("SELECT * FROM duckdb_settings()", "table functions"),
        ("FROM secret", "only tables"),
    ],
)
def test_duckdb_dialect_resolves_names_the_same_way(sql: str, says: str) -> None:
    with pytest.raises(RefusedSQLError, match=says):
        readonly.check(sql, "duckdb")


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("WITH t AS (SELECT symbol FROM wh.trades) SELECT * FROM t UNION ALL SELECT * FROM t", "clickhouse"),
        ("WITH t AS (SELECT symbol FROM wh.trades) SELECT * FROM (SELECT * FROM t) WHERE symbol IN t", "clickhouse"),
        ("WITH t AS (SELECT 1 AS a), u AS (SELECT * FROM t) SELECT * FROM u", "clickhouse"),
        ("WITH t AS (SELECT 1 AS a) SELECT (SELECT max(a) FROM t) AS m", "clickhouse"),
        ("WITH t AS (SELECT 1 AS a) SELECT * FROM `t`", "clickhouse"),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", "duckdb"),
        (
            "SELECT symbol, sumIf(size, side = 'buy'), uniqExactIf(trade_id, price > 0), quantiles(0.1, 0.9)(price), "
            "avgOrNull(price) FROM wh.trades GROUP BY symbol",
            "clickhouse",
        ),
        ("SELECT x FROM wh.trades ARRAY JOIN [1, 2] AS x", "clickhouse"),
        ("SELECT * FROM wh.trades FINAL", "clickhouse"),
        ("SELECT wh.trades.price FROM wh.trades", "clickhouse"),
        ("SELECT * FROM wh.trades AS t, LATERAL (SELECT t.price * 2 AS p) AS s", "duckdb"),
        ("SELECT symbol FROM wh.trades WHERE symbol IN ('A', 'B') AND price IN (1, 2)", "clickhouse"),
        (
            "SELECT date_trunc('hour', timestamp) AS h, list(price ORDER BY timestamp)[1] FROM wh.trades GROUP BY h",
            "duckdb",
        ),
    ],
)
def test_ctes_in_scope_and_analysis_functions_pass(sql: str, dialect: str) -> None:
    readonly.check(sql, dialect)


def test_the_named_queries_and_their_duckdb_translations_pass() -> None:
    from warehouse.sql.translate import clickhouse_to_duckdb

    named = queries.list_queries()
    assert len(named) > 10
    for q in named:
        readonly.check(q.sql, "clickhouse")
        readonly.check(clickhouse_to_duckdb(q.sql), "duckdb")


def test_no_engine_function_that_reaches_settings_files_or_the_server_is_on_the_allowlist() -> None:
    import duckdb

    con = duckdb.connect()
    try:
        names = [r[0] for r in con.execute("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()]
    finally:
        con.close()
    allowed = {n for n in names if readonly._function_allowed(n)}
    assert {"sum", "arg_max", "date_trunc", "list_transform", "regexp_replace"} <= allowed
    risky = ("duckdb_", "pg_", "current_", "read_", "get", "set", "has_", "txid", "nextval", "currval", "query",
             "sniff", "glob", "version", "which_secret", "sleep", "error")  # fmt: skip
    clock = {"current_date", "current_timestamp"}
    assert not sorted(n for n in allowed if n.lower().startswith(risky) and n.lower() not in clock)
    clickhouse = ("getServerSetting", "getSetting", "hasColumnInTable", "currentDatabase", "currentUser", "version",
                  "hostName", "uptime", "timezone", "file", "url", "s3", "remote", "dictGet", "dictGetString",
                  "joinGet", "getMacro", "filesystemAvailable", "tcpPort", "serverUUID", "sleep", "throwIf",
                  "arrayReduce", "initializeAggregation", "in", "globalIn", "notIn", "getSizeOfEnumType",
                  "currentSchemas", "shardNum", "queryID", "getClientHTTPHeader", "catboostEvaluate")  # fmt: skip
    assert not [n for n in clickhouse if readonly._function_allowed(n)]


def test_a_larger_own_limit_is_lowered_to_max_rows_plus_one() -> None:
    def engine_sql(sql: str, engine: str = "duckdb") -> str:
        return readonly.to_engine_sql(readonly.check(sql, "clickhouse"), "clickhouse", engine, 10)

    assert engine_sql("SELECT * FROM wh.trades ORDER BY price LIMIT 3000000").endswith("ORDER BY price LIMIT 11")
    assert engine_sql("SELECT * FROM wh.trades LIMIT 5, 3000000", "clickhouse").endswith("LIMIT 11 OFFSET 5")
    for sql in ("SELECT symbol FROM wh.trades LIMIT 1 BY symbol", "SELECT * FROM wh.trades LIMIT 3 WITH TIES"):
        assert engine_sql(sql, "clickhouse").startswith("SELECT * FROM (") and engine_sql(sql).endswith(
            ") AS _wh_sql LIMIT 11"
        )


def test_limit_is_added_once_and_kept_when_given() -> None:
    assert readonly.to_engine_sql(readonly.check("SELECT * FROM wh.trades", "clickhouse"), "clickhouse",
                                  "clickhouse", 10).endswith("LIMIT 11")  # fmt: skip
    assert readonly.to_engine_sql(readonly.check("SELECT * FROM wh.trades LIMIT 3", "clickhouse"), "clickhouse",
                                  "duckdb", 10).endswith("LIMIT 3")  # fmt: skip
    union = readonly.to_engine_sql(readonly.check("SELECT 1 UNION ALL SELECT 2", "clickhouse"), "clickhouse",
                                   "duckdb", 10)  # fmt: skip
    assert union.endswith("LIMIT 11") and "_wh_sql" in union


def _query_file(tmp_path: Path, body: str) -> Path:
    (tmp_path / "ddl").mkdir(exist_ok=True)
    (tmp_path / "queries" / "internal").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "queries" / "q.sql"
    path.write_text(body)
    return path


def test_header_parameters_ranges_includes_and_undeclared_placeholders(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WH_PROJECT_ROOT", str(tmp_path))
    (tmp_path / "queries" / "internal").mkdir(parents=True)
    (tmp_path / "queries" / "internal" / "block.sql").write_text("-- name: block\nSELECT {n:UInt32} AS n\n")
    q = queries.parse_query_file(_query_file(tmp_path, "-- name: q\n-- param n: UInt32 = 5 in [1, 10]\n"
                                                        "SELECT * FROM ({{block}})\n"))  # fmt: skip
    assert "SELECT {n:UInt32} AS n" in q.sql and "{{" not in q.sql
    assert q.bind({}) == {"n": 5} and q.bind({"n": "10"}) == {"n": 10}
    with pytest.raises(QueryError, match="outside"):
        q.bind({"n": 11})
    with pytest.raises(QueryError, match="not declared"):
        queries.parse_query_file(_query_file(tmp_path, "-- name: q\nSELECT {m:String}\n"))
    with pytest.raises(QueryError, match="names no file"):
        queries.parse_query_file(_query_file(tmp_path, "-- name: q\nSELECT * FROM ({{nothing}})\n"))
