"""`wh sql`'s guard against escapes, on DuckDB and on the embedded ClickHouse.

The warehouse here is small (20,000 synthetic ticks) and carries a canary: a table
`secret` outside the wh database (DuckDB `main.secret`, ClickHouse `default.secret`) that
an unqualified name reaching the catalog would read. The corpus files in
tests/corpus/sql/ hold the escape attempts (all refused) and analysts' queries (all run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from warehouse.cli.main import app
from warehouse.errors import QueryError, RefusedSQLError

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
ENGINES = ("duckdb", "clickhouse")
DIALECTS = ("clickhouse", "duckdb")
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "sql"
CANARY = "CANARY-7f3a"
LEFTOVERS = ("/tmp/wh_sql_escape_outfile.csv", "/tmp/wh_sql_escape_copy.csv", "/tmp/wh_sql_escape.duckdb")
runner = CliRunner()


def wh(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from warehouse.sql.engines import close_embedded

    home = tmp_path_factory.mktemp("sql_guard") / "wh_data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WH_HOME", str(home))
        for var in ("WH_CLICKHOUSE_URL", "WH_CLICKHOUSE_HOST"):
            mp.delenv(var, raising=False)
        r = wh("generate", "--ticks", "20000", "--days", "1", "--seed", "5")
        assert r.exit_code == 0, r.output
        _plant_canaries()
        yield home
    close_embedded()


def _plant_canaries() -> None:
    from warehouse.config import get_settings
    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine

    s = get_settings()
    duck = DuckDBEngine(s.duckdb_path)
    try:
        duck.command("CREATE TABLE main.secret (x VARCHAR)")
        duck.command(f"INSERT INTO main.secret VALUES ('{CANARY}')")
    finally:
        duck.close()
    ch = ClickHouseEngine(s)
    try:
        ch.command("CREATE TABLE default.secret (x String) ENGINE = MergeTree ORDER BY tuple()")
        ch.command(f"INSERT INTO default.secret VALUES ('{CANARY}')")
    finally:
        ch.close()


def run(sql: str, engine: str, dialect: str = "clickhouse", max_rows: int = 100_000) -> pa.Table:
    from warehouse.config import get_settings
    from warehouse.sql import readonly

    return readonly.run(sql, dialect=dialect, engine=engine, settings=get_settings(), max_rows=max_rows, timeout=20)


def _fingerprint() -> dict[str, object]:
    """Every table of both engines (the canaries included) with its row count."""
    from warehouse.config import get_settings
    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine

    s = get_settings()
    out: dict[str, object] = {}
    duck = DuckDBEngine(s.duckdb_path, read_only=True)
    try:
        names = duck.query("SELECT table_schema || '.' || table_name AS t FROM information_schema.tables ORDER BY t")
        out["duckdb"] = {t: duck.query(f"SELECT count(*) AS n FROM {t}").column("n")[0].as_py()
                         for t in names.column("t").to_pylist()}  # fmt: skip
    finally:
        duck.close()
    ch = ClickHouseEngine(s)
    try:
        names = ch.query("SELECT database || '.' || name AS t FROM system.tables "
                         "WHERE database IN ('wh', 'default') ORDER BY t")  # fmt: skip
        out["clickhouse"] = {t: ch.query(f"SELECT count() AS n FROM {t}").column("n")[0].as_py()
                             for t in names.column("t").to_pylist()}  # fmt: skip
    finally:
        ch.close()
    return out


def _corpus(name: str) -> list[tuple[tuple[str, ...], str]]:
    """(dialects, query) per entry of tests/corpus/sql/<name>."""
    out = []
    for raw in (CORPUS / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, rest = line.partition(":")
        if sep and head in DIALECTS:
            out.append(((head,), rest.strip()))
        else:
            out.append((DIALECTS, line))
    return out


def _shows(table: pa.Table) -> str:
    return str(table.to_pylist())


def _contains(table: pa.Table, text: str) -> bool:
    """Whether any value of the result, as text, contains `text` (fast on 100,000 rows)."""
    for column in table.columns:
        try:
            as_text = pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            as_text = pa.array([str(v) for v in column.to_pylist()], pa.string())
        if pc.any(pc.match_substring(as_text, text)).as_py():
            return True
    return False


# ---------------------------------------------------------------- the escapes of the issue, one by one


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "sql",
    [
        # DuckDB answered with its settings (secret_directory …) and the database file's path
        "SELECT * FROM (WITH pg_settings AS (SELECT 1) SELECT 1) AS a, pg_settings",
        "SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1) AS a, duckdb_databases",
        # an unqualified name resolves in DuckDB's main schema / ClickHouse's default database
        "SELECT * FROM (WITH secret AS (SELECT 1 AS x) SELECT 1) AS a, secret",
        "SELECT (SELECT max(x) FROM secret) AS v FROM (WITH secret AS (SELECT 'cte' AS x) SELECT 1) AS a",
        "WITH secret AS (SELECT * FROM secret) SELECT * FROM secret",
        "WITH a AS (SELECT * FROM secret), secret AS (SELECT 'cte' AS x) SELECT * FROM a",
    ],
)
def test_a_cte_defined_elsewhere_does_not_unlock_its_name(warehouse, engine: str, sql: str) -> None:
    with pytest.raises(RefusedSQLError, match="only tables of the wh database"):
        _shows(run(sql, engine))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql", ["SELECT 0 IN system.one AS x", "SELECT 0 IN (system.one) AS x",
                                 "SELECT 'x' IN default.secret AS x", "SELECT 'x' IN secret AS x",
                                 f"SELECT count() AS n FROM wh.trades WHERE '{CANARY}' IN (secret)"])  # fmt: skip
def test_the_right_side_of_in_is_checked_as_a_table(warehouse, engine: str, sql: str) -> None:
    with pytest.raises(RefusedSQLError, match="IN "):
        _shows(run(sql, engine))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("sql", "dialect", "name"),
    [
        ("SELECT getServerSetting('path') AS p", "clickhouse", "getServerSetting"),
        ("SELECT hasColumnInTable('system', 'one', 'dummy') AS h", "clickhouse", "hasColumnInTable"),
        ("SELECT currentDatabase() AS d", "clickhouse", "CURRENT_DATABASE"),  # sqlglot's name for it
        ("SELECT current_setting('secret_directory') AS d", "duckdb", "current_setting"),
        (
            "SELECT count(*) AS n FROM wh.trades WHERE symbol <> getServerSetting('path')",
            "clickhouse",
            "getServerSetting",
        ),
    ],
)
def test_functions_off_the_allowlist_are_refused_by_name(warehouse, engine: str, sql: str, dialect: str,
                                                         name: str) -> None:  # fmt: skip
    with pytest.raises(RefusedSQLError, match=rf"function {name}\(\) is not allowed"):
        _shows(run(sql, engine, dialect))


@pytest.mark.parametrize("engine", ENGINES)
def test_ctes_in_scope_and_wh_tables_still_work(warehouse, engine: str) -> None:
    t = run("WITH secret AS (SELECT 'cte' AS x) SELECT x FROM secret UNION ALL "
            "SELECT x FROM (SELECT x FROM secret) AS s", engine)  # fmt: skip
    assert t.column("x").to_pylist() == ["cte", "cte"]
    t = run("WITH secret AS (SELECT 'cte' AS x) SELECT count() AS n FROM wh.trades "
            "WHERE 'cte' IN (SELECT x FROM secret)", engine)  # fmt: skip
    assert t.column("n")[0].as_py() > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_large_own_limit_is_bounded_by_max_rows_and_keeps_the_order(warehouse, engine: str) -> None:
    """The query's own LIMIT above --max-rows is lowered in the SQL, so the engine never
    builds more than max_rows + 1 rows (DuckDB materialised a `LIMIT 3000000` whole: 545 MB)."""
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    with pytest.raises(RefusedSQLError, match="more than 100 rows"):
        run("SELECT * FROM wh.market_ticks ORDER BY timestamp LIMIT 3000000", engine, max_rows=100)
    stmt = "SELECT symbol, price, trade_id FROM wh.trades ORDER BY price DESC, symbol, trade_id LIMIT 3000000"
    got = run(stmt, engine, max_rows=100_000)
    eng = open_engine(engine, get_settings(), read_only=True)
    try:
        direct = eng.query(stmt)
    finally:
        eng.close()
    assert got.num_rows == direct.num_rows > 1000
    assert got.column("trade_id").to_pylist() == direct.column("trade_id").to_pylist()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_is_never_asked_for_more_than_max_rows_plus_one(warehouse, engine: str, monkeypatch) -> None:
    """What reaches the engine: the query's own `LIMIT 3000000` is gone, whatever its form."""
    import sqlglot
    from sqlglot import exp

    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine

    sent: list[str] = []
    cls = DuckDBEngine if engine == "duckdb" else ClickHouseEngine
    original = cls.query

    def spy(self, sql, params=None):
        sent.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(cls, "query", spy)
    for stmt in ("SELECT * FROM wh.market_ticks LIMIT 3000000",
                 "SELECT * FROM wh.market_ticks ORDER BY timestamp DESC LIMIT 3000000",
                 "SELECT symbol FROM wh.trades UNION ALL SELECT symbol FROM wh.market_ticks LIMIT 3000000",
                 "SELECT * FROM (SELECT * FROM wh.market_ticks LIMIT 3000000) AS s"):  # fmt: skip
        with pytest.raises(RefusedSQLError, match="more than 100 rows"):
            run(stmt, engine, max_rows=100)
    assert len(sent) == 4
    for text in sent:
        tree = sqlglot.parse_one(text.split("\nSETTINGS")[0], read=engine)
        outer = tree.args["limit"].expression
        assert isinstance(outer, exp.Literal) and int(outer.this) == 101, text


@pytest.mark.slow
def test_peak_memory_of_a_query_with_its_own_huge_limit(tmp_path) -> None:
    """3,000,000 quotes; `--max-rows 100000` must bound the process, not just the answer.
    Measured: 545 MB peak RSS before the fix (the whole LIMIT built first), ~200 MB after,
    against ~180 MB for `SELECT 1`."""
    home = tmp_path / "wh_data"
    env = {**os.environ, "WH_HOME": str(home)}
    for var in ("WH_CLICKHOUSE_URL", "WH_CLICKHOUSE_HOST"):
        env.pop(var, None)
    wh_cmd = [sys.executable, "-m", "warehouse.cli.main"]
    subprocess.run([*wh_cmd, "generate", "--ticks", "3750000", "--engine", "duckdb", "--seed", "3"], env=env,
                   check=True, capture_output=True, timeout=600)  # fmt: skip

    def peak_mb(*args: str) -> float:
        probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", probe, *wh_cmd, "sql", *args], env=env, check=True,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        return int(out.stdout.strip()) / 1024

    idle = peak_mb("SELECT 1 AS a")
    big = peak_mb("SELECT * FROM wh.market_ticks ORDER BY timestamp LIMIT 3000000", "--max-rows", "100000")
    assert big - idle < 150, (idle, big)


# ---------------------------------------------------------------- the corpus


def test_every_escape_in_the_corpus_is_refused_on_both_engines(warehouse) -> None:
    before = _fingerprint()
    entries = _corpus("escapes.txt")
    assert len(entries) >= 100
    leaks = []
    for dialects, sql in entries:
        for dialect in dialects:
            for engine in ENGINES:
                try:
                    shown = _shows(run(sql, engine, dialect))
                except RefusedSQLError:
                    continue
                except Exception as exc:  # an engine error means the statement got past the guard
                    shown = f"{type(exc).__name__}: {exc}"
                leaks.append(f"{engine}/{dialect}: {sql[:100]} -> {shown[:200]}")
    assert not leaks, "\n".join(leaks)
    assert _fingerprint() == before
    assert not [p for p in LEFTOVERS if Path(p).exists()]


def test_every_analyst_query_in_the_corpus_runs_on_both_engines(warehouse) -> None:
    failures = []
    for dialects, sql in _corpus("allowed.txt"):
        for dialect in dialects[:1]:
            for engine in ENGINES:
                try:
                    table = run(sql, engine, dialect)
                except Exception as exc:
                    failures.append(f"{engine}/{dialect}: {sql[:100]} -> {type(exc).__name__}: {exc}")
                    continue
                assert CANARY not in _shows(table)
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- the CLI: an Error: line, never a traceback


@pytest.mark.parametrize("engine", ENGINES)
def test_csv_renders_list_and_map_columns_as_json_text(warehouse, engine: str) -> None:
    r = wh("sql", "SELECT [1, 2] AS l, map('a', 1) AS m, 3 AS n FROM wh.trades LIMIT 1", "--engine", engine,
           "--format", "csv")  # fmt: skip
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    assert r.output.splitlines() == ['"l","m","n"', '"[1, 2]","{""a"": 1}",3']


@pytest.mark.parametrize("engine", ENGINES)
def test_fifty_nested_parentheses_give_an_error_line(warehouse, engine: str) -> None:
    stmt = "SELECT " + "(" * 50 + "1" + ")" * 50 + " AS x FROM wh.trades LIMIT 1"
    r = wh("sql", stmt, "--engine", engine)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert "Error:" in r.output and "nests too deeply" in r.output


def test_the_real_command_prints_no_traceback(warehouse) -> None:
    for args, code in ((["--format", "csv", "SELECT [1, 2] AS l, map('k', 2) AS m FROM wh.trades LIMIT 1"], 0),
                       (["SELECT " + "(" * 50 + "1" + ")" * 50 + " AS x"], 1)):  # fmt: skip
        p = subprocess.run([sys.executable, "-m", "warehouse.cli.main", "sql", *args], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        assert p.returncode == code, (p.stdout, p.stderr)
        assert "Traceback" not in p.stdout + p.stderr
        assert ("Error:" in p.stderr) == (code == 1)


# ---------------------------------------------------------------- property: refused, or reads only wh tables

GOOD_NAMES = ("wh.trades", "wh.market_ticks")
BAD_NAMES = ("system.one", "pg_settings", "duckdb_settings()", "information_schema.tables")
CTE = "secret"  # also the canary table's name: out of scope, it would read the canary
GOOD_FUNCS = ("abs(-1)", "length('ab')", "lower('X')", "greatest(1, 2)", "coalesce(NULL, 1)", "round(1.5)")
BAD_FUNCS = ("getServerSetting('path')", "hasColumnInTable('system', 'one', 'dummy')", "currentDatabase()",
             "current_setting('threads')", "file('/etc/hostname')", "version()", "getenv('HOME')")  # fmt: skip


class _Gen:
    """SQL-ish text from a small grammar, with the ground truth computed alongside:
    `ok` stays True only if every table reference is wh.* or `secret` where a
    `WITH secret AS …` is in scope, and every function is an allowed one."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.ok = True
        self.aliases = 0

    def pick(self, options: tuple[str, ...]) -> str:
        return self.draw(st.sampled_from(options))

    def chance(self, p: float) -> bool:
        """True with probability ~p; the simplest draw (0) is False, so shrinking flattens the text."""
        return self.draw(st.integers(0, 99)) >= 100 - round(p * 100)

    def query(self, scope: frozenset[str], depth: int) -> str:
        head = ""
        if depth < 3 and self.chance(0.4):
            body = "SELECT 'cte' AS x" if self.chance(0.5) else self.query(scope, depth + 1)
            head = f"WITH {CTE} AS ({body}) "
            scope = scope | {CTE}
        if depth < 3 and self.chance(0.2):
            return head + f"{self.select(scope, depth, star=False)} UNION ALL {self.select(scope, depth, star=False)}"
        return head + self.select(scope, depth, star=True)

    def select(self, scope: frozenset[str], depth: int, *, star: bool) -> str:
        """`star`: a standalone SELECT (not a UNION branch), which may be `SELECT *` and have a LIMIT."""
        items = "*" if star and self.chance(0.3) else f"{self.expr(scope, depth)} AS v"
        text = f"SELECT {items} FROM {self.source(scope, depth)}"
        if self.chance(0.2):
            text += f" JOIN {self.source(scope, depth)} ON 1 = 1"
        if self.chance(0.4):
            text += f" WHERE {self.condition(scope, depth)}"
        if star and self.chance(0.6):
            text += " LIMIT 5"
        return text

    def name(self, scope: frozenset[str]) -> str:
        name = self.pick(GOOD_NAMES * 3 + BAD_NAMES + (CTE, CTE))
        if name in BAD_NAMES or (name == CTE and CTE not in scope):
            self.ok = False
        return name

    def source(self, scope: frozenset[str], depth: int) -> str:
        self.aliases += 1
        if depth < 3 and self.chance(0.3):
            return f"({self.query(scope, depth + 1)}) AS d{self.aliases}"
        return f"{self.name(scope)} AS t{self.aliases}"

    def condition(self, scope: frozenset[str], depth: int) -> str:
        kind = self.draw(st.integers(0, 3))
        if kind == 0:
            return f"{self.expr(scope, depth)} IN {self.name(scope)}"
        if kind == 1 and depth < 3:
            return f"{self.expr(scope, depth)} IN ({self.query(scope, depth + 1)})"
        if kind == 2 and depth < 3:
            return f"EXISTS ({self.query(scope, depth + 1)})"
        return "1 = 1"

    def expr(self, scope: frozenset[str], depth: int) -> str:
        kind = self.draw(st.integers(0, 5))
        if kind == 0:
            text = self.pick(("1", "'a'", "NULL"))
        elif kind == 1:
            text = self.pick(BAD_FUNCS)
            self.ok = False
        elif kind == 2 and depth < 3:
            text = f"({self.query(scope, depth + 1)})"
        else:
            text = self.pick(GOOD_FUNCS)
        nesting = self.draw(st.sampled_from((0,) * 12 + (1, 2, 5, 60)))  # 60: past sqlglot's recursion limit
        return "(" * nesting + text + ")" * nesting


@st.composite
def sql_cases(draw: st.DrawFn) -> tuple[str, bool]:
    gen = _Gen(draw)
    text = gen.query(frozenset(), 0)
    return text, gen.ok


@pytest.mark.property
def test_generated_sql_is_refused_or_reads_only_wh_tables(warehouse) -> None:
    from warehouse.sql import readonly

    before = _fingerprint()

    @given(case=sql_cases(), dialect=st.sampled_from(DIALECTS))
    def prop(case: tuple[str, bool], dialect: str) -> None:
        sql, only_wh = case
        if not only_wh:  # the guard itself refuses it, before any engine sees it
            with pytest.raises(RefusedSQLError):
                readonly.check(sql, dialect)
        for engine in ENGINES:
            try:
                table = run(sql, engine, dialect)
            except (RefusedSQLError, QueryError) as exc:  # refused, or an engine error on a wh-only query
                event(f"{engine}: {type(exc).__name__}{'' if only_wh else ' (touches other tables)'}")
                continue
            event(f"{engine}: ran")
            assert only_wh, f"ran on {engine}: {sql}"
            assert not _contains(table, CANARY) and not _contains(table, str(warehouse)), (engine, sql)

    prop()
    assert _fingerprint() == before
