"""`wh sql --engine questdb`: analysts' SQL in QuestDB's own dialect, read-only, with limits.

QuestDB's SQL (SAMPLE BY, LATEST ON, ASOF JOIN, a bare table name as a query) has no sqlglot
dialect, so the statement is not parsed: it is checked token by token (sqlglot's tokenizer,
which knows quotes and comments), and then run where QuestDB itself forbids writing. Two
barriers, as for the other engines:

1. The text is refused unless it is one statement that starts with SELECT or WITH and
   * every table it names — after FROM, JOIN, a comma of a FROM list, even inside
     parentheses — is one of wh's (`wh.trades` or `wh_trades`, …) or a CTE the text
     defines; a quoted string as a table (`FROM 'sys.x'`) is refused; a CTE body or the
     right side of UNION must be a query, not a bare table name;
   * every function called is on an allowlist (aggregates, window, math, string,
     date/time, conditional): catalog and file functions (`tables()`, `read_parquet()`,
     `long_sequence()`, `wal_tables()`, …) and unknown names are refused by name.
   A CTE name counts only where the CTE is in scope (after its body, inside the query that
   owns its WITH); unbalanced parentheses are refused (they could close the row-limit wrapper).
2. It runs over PG wire as QuestDB's read-only user (`pg.readonly.user.enabled`), which the
   server refuses every write, DDL and snapshot (measured on 9.3.4: "Write permission
   denied"); never as the admin.

Limits: the query runs as `SELECT * FROM (q) LIMIT max_rows + 1` and more rows than
`max_rows` is an error; after `timeout` seconds the query is cancelled (a PG cancel request,
which QuestDB honours). QuestDB 9.3.4 sends timestamps over PG wire at microseconds: a
TIMESTAMP_NS column loses its nanoseconds here (`wh query … --engine questdb`, over HTTP,
keeps them).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from typing import Any

import pyarrow as pa
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from warehouse.config import QuestDBSettings
from warehouse.errors import ConfigError, QueryError, RefusedSQLError
from warehouse.sql.engines.questdb import HOT_TABLES as WH_TABLES
from warehouse.sql.engines.questdb import rewrite

_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTIONS = _words("""
    count count_distinct sum ksum nsum avg min max first last first_not_null last_not_null
    arg_min arg_max geomean stddev stddev_pop stddev_samp variance var_pop var_samp corr
    covar_pop covar_samp mode approx_percentile approx_median approx_count_distinct
    string_agg string_distinct_agg bool_and bool_or weighted_avg weighted_stddev vwap

    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value

    abs round round_down round_up round_half_even floor ceil ceiling sqrt power pow exp ln log
    log2 log10 sign greatest least mod cbrt pi sin cos tan asin acos atan atan2 degrees radians
    coalesce nullif nvl isnull isnotnull if case cast typeof is_nan is_finite

    concat length lower upper left right substring strpos position replace trim ltrim rtrim
    split_part starts_with regexp_replace regexp_like to_lowercase to_uppercase lpad rpad
    initcap to_str to_char quote_ident

    now today yesterday tomorrow systimestamp sysdate to_timestamp to_date to_timezone to_utc
    date_trunc timestamp_floor timestamp_ceil dateadd datediff extract year month day hour
    minute second millis micros nanos day_of_week day_of_week_sunday_first week_of_year
    days_in_month is_leap_year interval interval_start interval_end
""")
# words a "(" may follow that are not functions
_SYNTAX = _words("""
    in as over from join on using exists and or not where when then else select values between
    is all any some distinct union except intersect with case filter within like ilike by
    partition order group limit having window sample latest fill align to range rows
""")
# (not ON: `JOIN t ON a = b, other` is a cross join in QuestDB, the comma still lists tables)
_ENDS_FROM = {TokenType.WHERE, TokenType.GROUP_BY, TokenType.ORDER_BY, TokenType.LIMIT, TokenType.HAVING,
              TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT, TokenType.SELECT, TokenType.JOIN,
              TokenType.WINDOW}  # fmt: skip
_SET_OPS = {TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT}


def check(sql: str) -> str:
    """The statement without a trailing `;`, or RefusedSQLError saying what is not allowed."""
    try:
        # sqlglot's generic tokenizer reads strings as QuestDB does: '' escapes a quote, a
        # backslash is a character (Postgres' E'\'' would end the string elsewhere than QuestDB)
        tokens = Tokenizer().tokenize(sql)
    except TokenError as exc:
        raise RefusedSQLError(f"cannot read the SQL: {exc}") from exc
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    if not tokens:
        raise RefusedSQLError("no SQL statement")
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise RefusedSQLError("one statement only")
    if tokens[0].token_type not in (TokenType.SELECT, TokenType.WITH):
        raise RefusedSQLError(f"only a query (SELECT or WITH …) may run in wh sql, not {tokens[0].text.upper()} …")
    from_depth: set[int] = set()
    depth = 0
    # CTE scope: a name is usable after its body closes, while the query that owns its WITH
    # lasts (until the depth drops below the WITH's); never inside its own body (QuestDB has
    # no recursive CTEs: there the name would be the table of that name)
    visible: dict[str, int] = {}
    pending: list[tuple[str, int]] = []
    for i, tok in enumerate(tokens):
        kind = tok.token_type
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == TokenType.L_PAREN:
            depth += 1
            continue
        if kind == TokenType.R_PAREN:
            from_depth.discard(depth)
            depth -= 1
            if depth < 0:
                raise RefusedSQLError("unbalanced parentheses: a ')' closes nothing")
            for name, d in [p for p in pending if p[1] == depth]:
                visible[name] = d
                pending.remove((name, d))
            visible = {n: d for n, d in visible.items() if d <= depth}
            continue
        if kind == TokenType.ALIAS and _defines_cte(tokens, i):
            pending.append((tokens[i - 1].text.lower(), depth))
        if nxt is not None and nxt.token_type == TokenType.L_PAREN and _is_word(tok):
            _check_call(tok, tokens[i - 1] if i else None)
        if kind in (TokenType.FROM, TokenType.JOIN) or (kind == TokenType.COMMA and depth in from_depth):
            _check_source(tokens, i + 1, frozenset(visible))
            if kind == TokenType.FROM:
                from_depth.add(depth)
        elif kind in _ENDS_FROM or (_is_word(tok) and tok.text.lower() in ("sample", "latest")):
            from_depth.discard(depth)
        if kind in _SET_OPS or (kind == TokenType.ALIAS and _defines_cte(tokens, i)):
            _check_query_follows(tokens, i + 1)
    if depth != 0:
        raise RefusedSQLError("unbalanced parentheses: a '(' is never closed")
    return sql.strip().rstrip(";").rstrip()


def _is_word(tok: Token) -> bool:
    return tok.token_type == TokenType.IDENTIFIER or bool(_WORD.match(tok.text))


def _check_call(tok: Token, before: Token | None) -> None:
    name = tok.text.lower()
    if tok.token_type != TokenType.IDENTIFIER and name in _SYNTAX:
        return
    if before is not None and before.token_type == TokenType.DOT:
        raise RefusedSQLError(f"function …{tok.text}() is not allowed in wh sql (qualified names are refused)")
    if tok.token_type == TokenType.IDENTIFIER or name not in FUNCTIONS:
        raise RefusedSQLError(f"function {tok.text}() is not allowed in wh sql: only aggregate, window, math, "
                              "string, date/time and conditional functions on its allowlist "
                              "(warehouse/sql/readonly_questdb.py)")  # fmt: skip


def _defines_cte(tokens: list[Token], alias_at: int) -> bool:
    """`WITH name AS (` or `, name AS (`, with tokens[alias_at] the AS."""
    return (2 <= alias_at < len(tokens) - 1 and tokens[alias_at].token_type == TokenType.ALIAS
            and tokens[alias_at + 1].token_type == TokenType.L_PAREN
            and tokens[alias_at - 2].token_type in (TokenType.WITH, TokenType.COMMA))  # fmt: skip


def _check_source(tokens: list[Token], at: int, ctes: frozenset[str]) -> None:
    """What follows FROM / JOIN / a FROM-list comma: a subquery, a wh table or a CTE."""
    while at < len(tokens) and tokens[at].token_type == TokenType.L_PAREN:
        at += 1
    if at >= len(tokens) or tokens[at].token_type in (TokenType.SELECT, TokenType.WITH):
        return
    tok = tokens[at]
    if tok.token_type == TokenType.STRING:
        raise RefusedSQLError(f"'{tok.text}': a quoted string as a table is refused; "
                              "wh sql reads wh.market_ticks, wh.trades, wh.rejects")  # fmt: skip
    if not _is_word(tok):
        return  # not a name: QuestDB's own syntax error
    if at + 1 < len(tokens) and tokens[at + 1].token_type == TokenType.L_PAREN:
        return  # a table function: the allowlist of functions decides (none of its names reads a table)
    parts = [tok.text.lower()]
    while at + 2 < len(tokens) and tokens[at + 1].token_type == TokenType.DOT and _is_word(tokens[at + 2]):
        at += 2
        parts.append(tokens[at].text.lower())
    if len(parts) == 1 and parts[0] in ctes:
        return
    if len(parts) == 2 and parts[0] == "wh" and parts[1] in WH_TABLES:
        return
    if len(parts) == 1 and parts[0].startswith("wh_") and parts[0][3:] in WH_TABLES:
        return
    raise RefusedSQLError(f"table {'.'.join(parts)} is not one wh sql may read: wh.market_ticks, wh.trades, "
                          "wh.rejects (QuestDB's wh_market_ticks, wh_trades, wh_rejects), or a CTE of the query")  # fmt: skip


def _check_query_follows(tokens: list[Token], at: int) -> None:
    """After UNION/EXCEPT/INTERSECT [ALL] or a CTE's `AS (`: a query, not a bare table name."""
    while at < len(tokens) and tokens[at].token_type in (TokenType.L_PAREN, TokenType.ALL, TokenType.DISTINCT):
        at += 1
    if at < len(tokens) and tokens[at].token_type not in (TokenType.SELECT, TokenType.WITH):
        raise RefusedSQLError(f"a query must follow here, not {tokens[at].text!r} (QuestDB reads a bare name as a "
                              "whole table): write SELECT … FROM wh.<table>")  # fmt: skip


def run(sql: str, *, max_rows: int, timeout: float, settings: QuestDBSettings | None = None) -> pa.Table:
    """Check and run one read-only query as QuestDB's read-only PG user; the result as Arrow."""
    text = rewrite(check(sql))
    return execute(f"SELECT * FROM (\n{text}\n) LIMIT {int(max_rows) + 1}", max_rows=max_rows, timeout=timeout,
                   settings=settings)  # fmt: skip


def execute(text: str, *, max_rows: int, timeout: float, settings: QuestDBSettings | None = None) -> pa.Table:
    """Run `text` as the read-only user (no check: run() checks first)."""
    import psycopg

    s = settings if settings is not None else QuestDBSettings()
    host, port, user, password = s.reader()
    try:
        conn = psycopg.connect(host=host, port=port, user=user, password=password, dbname="qdb",
                               autocommit=True, connect_timeout=10)  # fmt: skip
    except psycopg.OperationalError as exc:
        raise ConfigError(f"cannot connect to QuestDB's PG wire at {host}:{port} as {user}: "
                          f"{str(exc).strip().splitlines()[-1]}") from exc  # fmt: skip
    timer = threading.Timer(timeout, conn.cancel_safe)
    timer.start()
    try:
        cur = conn.execute(text.encode())
        names = [d.name for d in cur.description or []]
        rows = cur.fetchall()
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "cancelled by user" in message:
            raise RefusedSQLError(f"the query ran longer than {timeout:g} s (--timeout)") from exc
        if "permission denied" in message.lower():
            raise RefusedSQLError(f"refused by QuestDB's read-only user: {message}") from exc
        raise QueryError(f"questdb: {message}") from exc
    finally:
        timer.cancel()
        conn.close()
    if len(rows) > max_rows:
        raise RefusedSQLError(f"the result has more than {max_rows:,} rows; add a LIMIT or raise --max-rows")
    return pa.table({name: _column([r[j] for r in rows]) for j, name in enumerate(_unique(names))})


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def _column(values: list[Any]) -> pa.Array:
    """QuestDB's timestamps arrive naive and mean UTC."""
    if any(isinstance(v, dt.datetime) for v in values):
        return pa.array([v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v for v in values],
                        pa.timestamp("us", tz="UTC"))  # fmt: skip
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
