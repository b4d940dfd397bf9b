"""ClickHouse SQL → DuckDB SQL, once, for every query (sqlglot plus the gaps it leaves).

queries/*.sql are written in ClickHouse's dialect, the source of truth. DuckDB runs the
sqlglot translation with these fixes applied to the syntax tree:

* ClickHouse functions sqlglot passes through unchanged get their DuckDB name
  (`groupArray` → `list`, `stddevPop`/`stddevPopStable` → `stddev_pop`, ...). sqlglot
  30.30 emits `STDDEVPOP`, which DuckDB rejects: the generator is patched here.
* Any function the result still calls that DuckDB does not have raises
  `UnsupportedSQLError` — a query never silently means something else.
* `FROM t FINAL` becomes `FROM t`: wh's DuckDB tables keep one row per key themselves.
* `{name:Type}` parameters become DuckDB's `$name`; values are always bound, never
  spliced into the text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import SqlglotError

from warehouse.errors import UnsupportedSQLError

# ClickHouse name (lower case) → DuckDB function name, for functions sqlglot leaves anonymous.
_RENAMES: dict[str, str] = {
    "grouparray": "list",
    "stddevpop": "stddev_pop",
    "stddevpopstable": "stddev_pop",
    "stddevsamp": "stddev_samp",
    "stddevsampstable": "stddev_samp",
    "varpop": "var_pop",
    "varpopstable": "var_pop",
    "varsamp": "var_samp",
    "varsampstable": "var_samp",
    "covarpop": "covar_pop",
    "covarsamp": "covar_samp",
    "argmax": "arg_max",
    "argmin": "arg_min",
    "any": "any_value",
}


class _DuckDB(DuckDB):
    class Generator(DuckDB.Generator):  # type: ignore[valid-type,misc]
        TRANSFORMS = {  # noqa: RUF012 — sqlglot's generator API
            **DuckDB.Generator.TRANSFORMS,
            exp.StddevPop: lambda self, e: self.func("STDDEV_POP", e.this),
            exp.StddevSamp: lambda self, e: self.func("STDDEV_SAMP", e.this),
            exp.VariancePop: lambda self, e: self.func("VAR_POP", e.this),
        }


@functools.cache
def _duckdb_functions() -> frozenset[str]:
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute("SELECT DISTINCT lower(function_name) FROM duckdb_functions()").fetchall()
    finally:
        con.close()
    return frozenset(r[0] for r in rows)


def _multi_if(args: list[exp.Expression]) -> exp.Expr:
    case = exp.Case()
    for cond, value in zip(args[:-1:2], args[1:-1:2], strict=True):
        case = case.when(cond, value)
    return case.else_(args[-1])


# ClickHouse functions whose DuckDB form is not a plain rename: name → builder from the arguments.
_REWRITES: dict[str, Callable[[list[exp.Expression]], exp.Expr]] = {
    # nanosecond epoch <-> TIMESTAMP_NS: the portable way to bucket time at any interval
    "tounixtimestamp64nano": lambda a: exp.func("epoch_ns", *a),
    "fromunixtimestamp64nano": lambda a: exp.func("make_timestamp_ns", a[0]),  # zone argument: always UTC here
    "intdiv": lambda a: exp.IntDiv(this=exp.paren(a[0], copy=False), expression=exp.paren(a[1], copy=False)),
    "multiif": _multi_if,
    "todate": lambda a: exp.cast(a[0], exp.DataType.build("DATE")),
    "tofloat64": lambda a: exp.cast(a[0], exp.DataType.build("DOUBLE")),
    "toint64": lambda a: exp.cast(a[0], exp.DataType.build("BIGINT")),
    "tonullable": lambda a: a[0],  # every DuckDB type is nullable
    # an array with no elements (ClickHouse's empty() of a string is not used by the queries)
    "empty": lambda a: exp.EQ(this=exp.func("len", a[0]), expression=exp.Literal.number(0)),
    # lag over a whole-partition frame (ClickHouse's form) = DuckDB's lag, which ignores frames
    "laginframe": lambda a: exp.func("lag", *a),
}


def _rename(node: exp.Expression) -> exp.Expr:
    if isinstance(node, exp.Join) and node.kind == "ASOF" and node.side:
        # sqlglot writes `LEFT ASOF JOIN`; DuckDB's grammar is `ASOF LEFT JOIN`
        node.set("kind", f"ASOF {node.side}")
        node.set("side", None)
        return node
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc)):
        name = str(node.this)
        rewrite = _REWRITES.get(name.lower())
        if rewrite is not None:
            return rewrite([arg.transform(_rename) for arg in node.expressions])
        new = _RENAMES.get(name.lower())
        if new is not None:
            node.set("this", new)
    return node


def parse_clickhouse(sql: str) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(sql, read="clickhouse") if s is not None]
    except SqlglotError as exc:
        raise UnsupportedSQLError(f"cannot parse ClickHouse SQL: {exc}") from exc
    if len(statements) != 1:
        raise UnsupportedSQLError(f"expected one statement, got {len(statements)}")
    return statements[0]


def _drop_final(node: exp.Expression) -> exp.Expression:
    """`FROM t FINAL` (ClickHouse: merge a ReplacingMergeTree's versions while reading) → `FROM t`:
    the DuckDB tables wh reads that way hold one row per key (the sink replaces in its transaction)."""
    return node.this if isinstance(node, exp.Final) else node


def clickhouse_to_duckdb(sql: str) -> str:
    """Translate one ClickHouse-dialect statement to DuckDB, or raise UnsupportedSQLError."""
    tree = parse_clickhouse(sql).transform(_rename).transform(_drop_final)
    known = _duckdb_functions()
    for node in tree.find_all(exp.Anonymous, exp.AnonymousAggFunc):
        name = str(node.this).lower()
        if name not in known:
            raise UnsupportedSQLError(
                f"function {node.this}() has no DuckDB translation; add it to "
                "warehouse/sql/translate.py or rewrite the query with portable functions"
            )
    try:
        return tree.sql(dialect=_DuckDB, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise UnsupportedSQLError(f"cannot translate to DuckDB: {exc}") from exc
