"""Analysts' SQL (`wh sql`): one read-only query over the warehouse's tables, with limits.

Two barriers, so that one mistake is not enough:

1. The statement is parsed with sqlglot and refused unless it is exactly one query
   (SELECT / UNION / WITH …) that reads only the warehouse's tables:
   * every table reference, wherever it stands (FROM, JOIN, a subquery, the right side
     of IN, `x IN db.table`, a column qualified by a database), is `wh.<table>` for a
     table of records.py, or the name of a CTE *visible at that point* — a CTE defined
     somewhere else in the text does not make the name usable everywhere. A name is a CTE
     only when the lexical rule below and sqlglot's scope resolution both say so;
   * every function is on an allowlist (aggregates, window, math, string, date/time,
     conditional, array/map): anything else — `getServerSetting`, `hasColumnInTable`,
     `file`, `url`, `current_setting`, `duckdb_*`, an unknown name — is refused by name;
   * no writes, DDL, SET, ATTACH, COPY, PRAGMA or SYSTEM; no table functions and no file
     paths as tables; no SETTINGS / FORMAT / INTO clauses.
   The same check runs again on the SQL sent to the engine (after translation), in the
   engine's dialect.
2. It runs on connections that cannot write: DuckDB opened `read_only=True` with
   `enable_external_access=false` and a locked configuration; ClickHouse with the query's
   own `SETTINGS … readonly = 1` (applied per query, also on the in-process engine, where
   a session-level SET would stick to the process).

CTE visibility (the lexical rule, measured on DuckDB 2.0 and ClickHouse 26.9): a CTE is
visible in the body of the query that owns its WITH, in later CTEs of the same WITH, in
its own body only under WITH RECURSIVE, and in every subquery of those; names match
exactly (ClickHouse is case-sensitive). Both engines see at least these CTEs, so a name
the rule accepts cannot reach a catalog table. ClickHouse scalar `WITH (…) AS x` is not
a table.

Limits: `max_rows` — the query runs as `SELECT * FROM (q) LIMIT max_rows + 1` unless its
own LIMIT is already at most that, so a query's own `LIMIT 3000000` no longer builds three
million rows first; more rows than `max_rows` is an error, not a silent cut. `timeout`
seconds (DuckDB: interrupt; ClickHouse: max_execution_time).
ClickHouse-dialect SQL runs on DuckDB through warehouse/sql/translate.py, the layer the
named queries use; DuckDB-dialect SQL runs on ClickHouse through plain sqlglot.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from warehouse.config import Settings
from warehouse.errors import QueryError, RefusedSQLError, UnsupportedSQLError
from warehouse.records import LEDGER_SCHEMAS, MATERIALIZED_SCHEMAS, SCHEMAS
from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine
from warehouse.sql.translate import clickhouse_to_duckdb

DIALECTS = ("clickhouse", "duckdb")
TABLES = frozenset(
    {*SCHEMAS, *LEDGER_SCHEMAS, *MATERIALIZED_SCHEMAS, "instruments", "quote_zscores"}
)  # + the catalog, the stored z-scores
_SOURCES = (exp.Table, exp.Subquery, exp.Values, exp.Unnest)
_NAMED = (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc, exp.CombinedParameterizedAgg,
          exp.ParameterizedAgg)  # fmt: skip
_OPERATORS = (exp.And, exp.Or, exp.Xor)  # sqlglot models these as functions


def _names(text: str) -> frozenset[str]:
    return frozenset(_norm(n) for n in text.split())


def _norm(name: str) -> str:
    """`argMax`, `arg_max` and sqlglot's `ARG_MAX` are one name."""
    return name.lower().replace("_", "")


# Aggregates: also the bases ClickHouse combinators attach to (sumIf, uniqExactIf, …).
AGGREGATES = _names("""
    count sum avg min max any any_value anyLast anyHeavy argMin argMax first last
    stddev stddev_pop stddev_samp stddevPop stddevSamp stddevPopStable stddevSampStable
    variance var_pop var_samp varPop varSamp varPopStable varSampStable variance_pop
    covar_pop covar_samp covarPop covarSamp corr regr_slope regr_intercept simpleLinearRegression
    skewness kurtosis skewPop skewSamp kurtPop kurtSamp entropy mode
    median quantile quantiles quantileExact quantilesExact quantileTDigest quantilesTDigest
    quantileTiming approx_quantile percentile_cont percentile_disc
    uniq uniqExact uniqCombined uniqHLL12 approx_count_distinct approx_distinct count_if
    groupArray groupUniqArray groupArraySorted list array_agg string_agg group_concat listagg
    product fsum favg sumKahan sumWithOverflow topK histogram bool_and bool_or logical_and logical_or
    sumMap minMap maxMap
""")
# ClickHouse aggregate combinators accepted after an allowed aggregate (uniqExactIf, sumArray).
_COMBINATORS = ("ornull", "ordefault", "distinct", "foreach", "array", "if")
WINDOW = _names("""
    row_number rank dense_rank percent_rank cume_dist ntile lag lead lagInFrame leadInFrame
    first_value last_value nth_value
""")
SCALARS = _names("""
    case if multiIf coalesce ifNull nullIf nvl isNull isNotNull assumeNotNull toNullable
    greatest least exists

    cast try_cast accurateCastOrNull typeof toTypeName toString toFixedString
    toInt8 toInt16 toInt32 toInt64 toUInt8 toUInt16 toUInt32 toUInt64 toFloat32 toFloat64
    toInt32OrNull toInt64OrNull toFloat64OrNull toInt64OrZero toFloat64OrZero
    toDecimal32 toDecimal64 toDecimal128 toBool

    abs sqrt cbrt exp exp2 exp10 ln log log2 log10 pow power round roundBankers floor ceil
    ceiling trunc truncate sign mod modulo intDiv intDivOrZero div divide plus minus multiply
    negate pi e sin cos tan asin acos atan atan2 sinh cosh tanh degrees radians hypot
    isNaN isInfinite isFinite is_nan is_inf factorial gcd lcm even rand random rand64
    runningDifference neighbor width_bucket

    lower upper lcase ucase length lengthUTF8 char_length octet_length len concat concat_ws concatWithSeparator
    substring substr substringUTF8 left right trim ltrim rtrim trimBoth trimLeft trimRight
    replace replaceAll replaceOne replaceRegexpAll replaceRegexpOne regexp_replace
    regexp_extract regexp_matches regexp_like match like ilike position strpos instr
    str_position locate positionCaseInsensitive startsWith endsWith starts_with ends_with
    prefix suffix contains splitByChar splitByString string_split str_split split format
    printf reverse repeat lpad rpad leftPad rightPad pad initcap ascii chr char empty notEmpty
    formatReadableSize formatReadableQuantity formatReadableTimeDelta
    md5 md5_digest sha2 sha256 hex cityHash64 city_hash64 sipHash64 xxHash64 hash
    base64Encode to_base64 uuid generateUUIDv4 gen_random_uuid

    now today yesterday current_timestamp current_date date_trunc timestamp_trunc dateDiff
    date_diff datediff dateAdd date_add dateSub date_sub date_part datepart extract
    time_bucket date_bin time_slice strftime strptime time_to_str str_to_time unix_to_time
    time_to_unix formatDateTime parseDateTimeBestEffort parseDateTimeBestEffortOrNull
    epoch epoch_ms epoch_us epoch_ns make_timestamp make_timestamp_ns make_date
    timestamp_from_parts date_from_parts to_timestamp
    toDate toDate32 toDateTime toDateTime64 toTimeZone toStartOfSecond toStartOfMinute
    toStartOfFiveMinutes toStartOfFifteenMinutes toStartOfHour toStartOfDay toStartOfWeek
    toMonday toStartOfMonth toStartOfQuarter toStartOfYear toStartOfInterval
    toUnixTimestamp toUnixTimestamp64Nano toUnixTimestamp64Micro toUnixTimestamp64Milli
    fromUnixTimestamp fromUnixTimestamp64Nano fromUnixTimestamp64Micro fromUnixTimestamp64Milli
    toYYYYMM toYYYYMMDD toYear toQuarter toMonth toDayOfMonth toDayOfWeek toDayOfYear toHour
    toMinute toSecond toISOWeek toISOYear year quarter month week day hour minute second
    millisecond microsecond dayofweek day_of_week dayofweek_iso dayofyear day_of_year
    weekofyear week_of_year dayname monthname last_day age toIntervalSecond toIntervalMinute
    toIntervalHour toIntervalDay

    array tuple struct struct_pack struct_extract tupleElement row map var_map mapKeys
    mapValues map_keys map_values mapContains element_at has hasAll hasAny indexOf
    arraySum arrayMin arrayMax arrayAvg arrayProduct arraySort arrayReverseSort arrayDistinct
    arrayMap arrayFilter arrayCount arrayExists arrayAll arraySlice arrayConcat arrayElement
    arrayEnumerate arrayJoin explode unnest range generate_series arrayStringConcat arrayZip
    arrayFlatten flatten arrayCompact arrayFirst arrayLast arrayCumSum arrayDifference
    arrayReverse arrayUniq arrayPushBack arrayPushFront arrayResize emptyArrayFloat64
    emptyArrayInt64 emptyArrayString array_size array_length array_contains array_position
    array_to_string array_filter filter transform array_distinct array_min array_max
    array_sum array_sort array_slice array_concat array_reverse array_compact
    list_value list_sum list_min list_max list_avg list_sort list_distinct list_transform
    list_filter list_extract list_element list_contains list_has list_slice list_concat
    list_reverse list_position cardinality

    JSONExtractString JSONExtractFloat JSONExtractInt JSONExtractBool JSONHas JSONLength
    json_extract json_extract_scalar json_extract_string columns
""")
ALLOWED_FUNCTIONS = AGGREGATES | WINDOW | SCALARS


def check(sql: str, dialect: str) -> exp.Query:
    """The parsed query, or RefusedSQLError saying what is not allowed."""
    if dialect not in DIALECTS:
        raise RefusedSQLError(f"--dialect {dialect!r}: use clickhouse or duckdb")
    tree = _parse(sql, dialect)
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
        raise RefusedSQLError(f"only queries (SELECT …) are allowed, not {kind}: wh sql is read-only")
    try:
        _check_tree(tree, dialect)
    except RecursionError as exc:
        raise _too_deep() from exc
    return tree


def _too_deep() -> RefusedSQLError:
    return RefusedSQLError("the statement nests too deeply for the SQL parser (sqlglot); "
                           "flatten it, e.g. with CTEs")  # fmt: skip


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot warns when it falls back to a raw Command or cannot place a scope; we refuse instead."""
    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _parse(sql: str, dialect: str) -> exp.Expr:
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        raise RefusedSQLError(f"cannot parse the statement as {dialect} SQL: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise _too_deep() from exc
    except Exception as exc:  # sqlglot's parser also fails with IndexError & co. on odd input
        raise RefusedSQLError(f"cannot parse the statement as {dialect} SQL "
                              f"({type(exc).__name__}: {exc})") from exc  # fmt: skip
    if len(statements) != 1:
        raise RefusedSQLError(f"one statement at a time, got {len(statements)}")
    return statements[0]


def _check_tree(tree: exp.Query, dialect: str) -> None:
    cte_refs = _scope_cte_references(tree)
    for node in tree.walk():
        if isinstance(node, exp.Command):
            raise RefusedSQLError(f"{str(node.this).upper()} is not allowed in wh sql")
        if isinstance(node, exp.Query):
            for clause in ("settings", "format", "into"):
                if node.args.get(clause):
                    raise RefusedSQLError(f"a {clause.upper()} clause is not allowed in wh sql")
        if isinstance(node, (exp.From, exp.Join)):
            _check_source(node, dialect)
        elif isinstance(node, exp.Table):
            _check_table(node, cte_refs, dialect)
        elif isinstance(node, exp.In):
            _check_in(node, dialect)
        elif isinstance(node, exp.Column):
            _check_column(node, dialect)
        elif isinstance(node, exp.Func) and not isinstance(node, _OPERATORS):
            _check_function(node)


def _check_source(node: exp.From | exp.Join, dialect: str) -> None:
    source = node.this
    if isinstance(source, exp.Final):  # ClickHouse `FROM wh.t FINAL`
        source = source.this
    if isinstance(node, exp.Join):
        if str(node.args.get("kind") or "").upper() == "ARRAY" and not isinstance(source, (exp.Table, exp.Query)):
            return  # ClickHouse ARRAY JOIN over array expressions (checked as expressions)
        if isinstance(source, exp.Lateral) and isinstance(source.this, exp.Subquery):
            return
    if not isinstance(source, _SOURCES):
        raise RefusedSQLError(f"cannot read from {_text(source, dialect)!r}: only wh.<table> and CTEs")


def _check_table(table: exp.Table, cte_refs: set[int], dialect: str) -> None:
    if not isinstance(table.this, exp.Identifier):
        raise RefusedSQLError(f"table functions are not allowed ({_text(table, dialect)}): only wh.<table> and CTEs")
    if table.args.get("catalog") is not None:
        raise RefusedSQLError(f"{_text(table, dialect)}: only tables of the wh database")
    if table.args.get("db") is not None:
        _check_wh_table(table.db, table.name, _text(table, dialect))
        return
    if table.name in _visible_ctes(table) and id(table) in cte_refs:
        return
    raise RefusedSQLError(f"{_text(table, dialect)}: only tables of the wh database (wh.trades, wh.market_ticks, "
                          "…) and CTEs visible at that point of the query")  # fmt: skip


def _check_wh_table(db: str, name: str, text: str) -> None:
    if db.lower() != "wh":
        raise RefusedSQLError(f"{text}: only tables of the wh database (write wh.trades, wh.market_ticks, …) and CTEs")
    if name.lower() not in TABLES:
        raise RefusedSQLError(f"{text}: not a table of the warehouse; use one of {', '.join(sorted(TABLES))}")


def _check_in(node: exp.In, dialect: str) -> None:
    """`x IN t`, `x IN (t)`, `x IN db.t`: ClickHouse reads a table there (measured), so a
    lone name on the right of IN is a table reference and must pass as one."""
    field = node.args.get("field")
    items = [field] if field is not None else list(node.expressions)
    if len(items) != 1:
        return
    target = items[0]
    while isinstance(target, (exp.Paren, exp.Alias)):
        target = target.this
    if isinstance(target, exp.Dot):
        raise RefusedSQLError(f"IN {_text(target, dialect)}: not a table of the wh database")
    if not isinstance(target, exp.Column):
        return  # a Table is checked as one; literals, tuples, subqueries by their own parts
    parts = [p.name for p in target.parts]
    text = _text(target, dialect)
    if len(parts) > 2:
        raise RefusedSQLError(f"IN {text}: only tables of the wh database")
    if len(parts) == 2:
        _check_wh_table(parts[0], parts[1], f"IN {text}")
        return
    if parts[0] not in _visible_ctes(node):
        raise RefusedSQLError(f"IN {text}: a name on the right of IN is read as a table; write "
                              "IN (SELECT … FROM wh.<table>), or a list of values in parentheses")  # fmt: skip


def _check_column(column: exp.Column, dialect: str) -> None:
    """`db.table.column`: only with wh and one of its tables (ClickHouse would resolve others)."""
    if column.args.get("catalog") is not None:
        raise RefusedSQLError(f"{_text(column, dialect)}: too many qualifiers; alias the table and write alias.column")
    if column.args.get("db") is not None:
        _check_wh_table(column.db, column.table, _text(column, dialect))


def _check_function(node: exp.Func) -> None:
    name = node.name if isinstance(node, _NAMED) else node.sql_name()
    if not name or not _function_allowed(name):
        shown = name or type(node).__name__
        raise RefusedSQLError(f"function {shown}() is not allowed in wh sql: only aggregate, window, math, "
                              "string, date/time, conditional and array functions on its allowlist "
                              "(warehouse/sql/readonly.py)")  # fmt: skip


def _function_allowed(name: str) -> bool:
    key = _norm(name)
    if key in ALLOWED_FUNCTIONS:
        return True
    stripped = True
    while stripped:  # sumIf, quantilesIf, uniqExactArrayIf, avgOrNull
        stripped = False
        for suffix in _COMBINATORS:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[: -len(suffix)]
                stripped = True
                if key in AGGREGATES:
                    return True
    return False


def _table_ctes(with_: exp.With, *, until: exp.Expr | None = None) -> Iterator[str]:
    recursive = bool(with_.args.get("recursive"))
    for cte in with_.expressions:
        if cte is until and not recursive:
            return
        if isinstance(cte, exp.CTE) and not cte.args.get("scalar") and isinstance(cte.this, exp.Query):
            yield cte.alias
        if cte is until:
            return


def _visible_ctes(node: exp.Expr) -> set[str]:
    """The CTE names visible at `node` (the lexical rule in the module docstring)."""
    names: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            names.update(_table_ctes(parent, until=child))
        elif isinstance(parent, exp.Query):
            with_ = parent.args.get("with_")
            if isinstance(with_, exp.With) and child is not with_:
                names.update(_table_ctes(with_))
        child, parent = parent, parent.parent
    return names


def _scope_cte_references(tree: exp.Expr) -> set[int]:
    """ids of the Table nodes that sqlglot's scope resolution maps to a CTE."""
    try:
        with _quiet_sqlglot():
            scopes = traverse_scope(tree)
    except RecursionError:
        raise
    except Exception as exc:  # sqlglot's optimizer errors: a table we cannot place is refused
        raise RefusedSQLError(f"cannot resolve the tables of the statement ({type(exc).__name__}: {exc})") from exc
    refs: set[int] = set()
    for scope in scopes:
        for table in scope.tables:
            source = scope.sources.get(table.name)
            if not table.args.get("db") and isinstance(source, Scope) and source.is_cte:
                refs.add(id(table))
    return refs


def _text(node: exp.Expr, dialect: str) -> str:
    try:
        return node.sql(dialect)
    except Exception:  # only for messages
        return type(node).__name__


def _plain_limit(tree: exp.Query) -> int | None:
    """The query's own `LIMIT n` when it is a plain row count (not BY, PERCENT, WITH TIES, FETCH)."""
    limit = tree.args.get("limit")
    if not isinstance(limit, exp.Limit) or limit.expressions:  # ClickHouse LIMIT n BY x
        return None
    options = limit.args.get("limit_options")
    if options is not None and any(options.args.get(k) for k in ("percent", "with_ties")):
        return None
    count = limit.expression
    if isinstance(count, exp.Literal) and not count.is_string and str(count.this).isdigit():
        return int(count.this)
    return None


def _with_limit(tree: exp.Query, rows: int) -> exp.Query:
    """Bound the result to `rows` rows inside the engine, so it never builds more.

    A query's own larger LIMIT is lowered (the first `rows` rows of `ORDER BY … LIMIT n` are
    those of `ORDER BY … LIMIT rows`; DuckDB built a whole `LIMIT 3000000` before); any other
    form is wrapped as `SELECT * FROM (q) LIMIT rows`.
    """
    if tree.args.get("limit") is None:
        if isinstance(tree, exp.Select):
            return tree.limit(rows, copy=True)
    else:
        own = _plain_limit(tree)
        if own is not None:
            if own <= rows:
                return tree
            tree = tree.copy()
            tree.args["limit"].set("expression", exp.Literal.number(rows))
            return tree
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
    """Check, translate and run one read-only query on `engine`; the result as Arrow.
    `engine="questdb"` takes QuestDB's own SQL (readonly_questdb.py; `dialect` is not used)."""
    if engine == "questdb":
        from warehouse.sql import readonly_questdb

        return readonly_questdb.run(sql, max_rows=max_rows, timeout=timeout)
    if engine not in ("duckdb", "clickhouse"):
        raise RefusedSQLError(f"--engine {engine!r}: use duckdb, clickhouse or questdb")
    tree = check(sql, dialect)
    try:
        text = to_engine_sql(tree, dialect, engine, max_rows)
    except QueryError:
        raise
    except RecursionError as exc:
        raise _too_deep() from exc
    except Exception as exc:  # sqlglot's generator on input it does not expect: say so, no traceback
        raise UnsupportedSQLError(f"cannot translate to {engine} ({type(exc).__name__}: {exc})") from exc
    check(text, engine)  # the same rules on what the engine will actually run
    if engine == "duckdb":
        table = _run_duckdb(text, settings, timeout)
    else:
        table = _run_clickhouse(text, settings, timeout, max_rows)
    if table.num_rows > max_rows:
        raise RefusedSQLError(f"the result has more than {max_rows:,} rows; add a LIMIT or raise --max-rows")
    return table


def _run_duckdb(text: str, settings: Settings, timeout: float) -> pa.Table:
    eng = DuckDBEngine(settings.duckdb_path, read_only=True, wait=settings.lock_wait_seconds,
                       config={"enable_external_access": False, "python_enable_replacements": False,
                               "lock_configuration": True})  # fmt: skip
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
        if "TOO_MANY_ROWS" in msg:
            raise RefusedSQLError(f"the result has more than {max_rows:,} rows; add a LIMIT or raise --max-rows") \
                from exc  # fmt: skip
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
