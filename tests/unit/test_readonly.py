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
