"""Named queries: queries/<name>.sql, ClickHouse dialect, with a parameter header.

    -- name: zscore
    -- description: one line for `wh query --list`
    -- param symbol: String
    -- param window: UInt32 = 60

    -- param interval: UInt32 = 60 in [1, 604800]

A file may splice in a building block from queries/internal/ with `{{name}}` (used as a
subquery: `FROM ({{positions_at}})`); the includer declares every parameter the block
uses. Parameters are bound by the engine (`{symbol:String}` on ClickHouse, `$symbol` on
DuckDB after translation), never formatted into the text. Values from the command line
are coerced and range-checked here against the declared type.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from warehouse.errors import QueryError, UnknownQueryError, UnsupportedSQLError
from warehouse.sql.engines import Engine
from warehouse.sql.files import queries_dir
from warehouse.sql.translate import clickhouse_to_duckdb

_HEADER = re.compile(r"^--\s*(name|description|param)\s*:?\s*(.*)$")
_PARAM = re.compile(r"^(\w+)\s*:\s*(\w+(?:\([^)]*\))?)\s*(?:=\s*(\S+))?\s*(?:in\s*\[\s*([^,\]]+),\s*([^\]]+)\])?$")
_INCLUDE = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*\}\}")

_INT_RANGES = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt64": (0, 2**63 - 1),  # DuckDB binds BIGINT; keep within it
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None
    low: str | None = None
    high: str | None = None

    def coerce(self, value: Any) -> Any:
        v = self._coerce(value)
        if self.low is not None and self.high is not None:
            lo, hi = self._coerce(self.low), self._coerce(self.high)
            if not lo <= v <= hi:
                raise QueryError(f"parameter {self.name}: {value!r} is outside [{self.low}, {self.high}]")
        return v

    def describe(self) -> str:
        shown = "''" if self.default == "" else self.default
        out = f"{self.name}:{self.type}" + (f"={shown}" if self.default is not None else "")
        return out + (f" in [{self.low}, {self.high}]" if self.low is not None else "")

    def _coerce(self, value: Any) -> Any:
        t = self.type
        try:
            if t in _INT_RANGES:
                v = int(value)
                lo, hi = _INT_RANGES[t]
                if not lo <= v <= hi:
                    raise ValueError(f"out of range [{lo}, {hi}]")
                return v
            if t.startswith("Float"):
                return float(value)
            if t == "Date":
                return value if isinstance(value, date) and not isinstance(value, datetime) \
                    else date.fromisoformat(str(value)[:10])  # fmt: skip
            if t == "String":
                return str(value)
            if t.startswith("DateTime"):
                when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
                # bound as naive UTC: ClickHouse reads it in the declared zone, DuckDB as UTC
                return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
            if t.startswith("Array("):
                inner = Param(self.name, t[len("Array(") : -1], None)
                items = json.loads(value) if isinstance(value, str) else value  # a default: `= []`
                if not isinstance(items, list | tuple):
                    raise ValueError("not a list")
                return [inner._coerce(x) for x in items]
        except ValueError as exc:
            raise QueryError(f"parameter {self.name} ({t}): {value!r} is not valid: {exc}") from exc
        raise QueryError(f"parameter {self.name}: unsupported type {t}")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    params: tuple[Param, ...]
    sql: str
    path: Path

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name for p in self.params}
        extra = set(values) - known
        if extra:
            raise QueryError(f"{self.name}: unknown parameter(s) {', '.join(sorted(extra))}")
        bound: dict[str, Any] = {}
        for p in self.params:
            if values.get(p.name) is not None:
                bound[p.name] = p.coerce(values[p.name])
            elif p.default is not None:
                bound[p.name] = p.coerce(p.default)
            else:
                raise QueryError(f"{self.name}: missing required parameter {p.name} ({p.type})")
        return bound

    @property
    def questdb(self) -> bool:
        """A queries/questdb/ file: QuestDB's dialect (SAMPLE BY, LATEST ON), never translated."""
        return self.path.parent.name == "questdb" or self.path.parent.parent.name == "questdb"

    def sql_for(self, engine: str) -> str:
        if self.questdb != (engine == "questdb"):
            where = "queries/questdb/" if self.questdb else "queries/ (ClickHouse dialect)"
            raise UnsupportedSQLError(f"{self.name} is a query of {where}: it does not run on {engine}"
                                      + ("" if self.questdb else "; QuestDB runs the files of queries/questdb/"))  # fmt: skip
        return clickhouse_to_duckdb_cached(self.sql) if engine == "duckdb" else self.sql

    def run(self, engine: Engine, values: Mapping[str, Any]) -> pa.Table:
        return engine.query(self.sql_for(engine.name), self.bind(values))


@functools.lru_cache(maxsize=256)
def clickhouse_to_duckdb_cached(sql: str) -> str:
    return clickhouse_to_duckdb(sql)


def parse_query_file(path: Path) -> NamedQuery:
    text = path.read_text()
    name, description, params = path.stem, "", []
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if not m:
            if line.strip() and not line.strip().startswith("--"):
                break
            continue
        key, rest = m.group(1), m.group(2).strip()
        if key == "name":
            name = rest
        elif key == "description":
            description = rest
        else:
            pm = _PARAM.match(rest)
            if not pm:
                raise QueryError(f"{path}: bad parameter line {line!r}")
            params.append(
                Param(pm.group(1), pm.group(2), _strip(pm.group(3)), _strip(pm.group(4)), _strip(pm.group(5)))
            )
    if name != path.stem:
        raise QueryError(f"{path}: header name {name!r} differs from the file name")
    q = NamedQuery(name, description, tuple(params), _expand(text, path, ()), path)
    _check_placeholders(q)
    return q


def _strip(value: str | None) -> str | None:
    """A header value; a quoted one ('' or 'text') is the string between the quotes."""
    if value is None:
        return None
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def _check_placeholders(q: NamedQuery) -> None:
    """Every `{name:Type}` in the SQL is declared in the header with that type."""
    declared = {p.name: p.type for p in q.params}
    for name, typ in _PLACEHOLDER.findall(q.sql):
        if declared.get(name, "").replace(" ", "") != typ.replace(" ", ""):
            raise QueryError(f"{q.path}: {{{name}:{typ}}} is not declared as `-- param {name}: {typ}`")


def _body(text: str) -> str:
    """The statement without its header comment block (for splicing into another query)."""
    lines = text.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines).strip()


def _expand(text: str, path: Path, seen: tuple[str, ...]) -> str:
    def splice(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in seen:
            raise QueryError(f"{path}: {{{{{name}}}}} includes itself")
        block = queries_dir() / "internal" / f"{name}.sql"
        if not block.is_file():
            raise QueryError(f"{path}: {{{{{name}}}}} names no file queries/internal/{name}.sql")
        return _expand(_body(block.read_text()), block, (*seen, name))

    return _INCLUDE.sub(splice, text)


def _dir(engine: str | None) -> Path:
    """queries/ for DuckDB and ClickHouse; queries/questdb/ for QuestDB (its own dialect)."""
    return queries_dir() / "questdb" if engine == "questdb" else queries_dir()


@functools.cache
def load(name: str, *, internal: bool = False, engine: str | None = None) -> NamedQuery:
    """The named query (files are read once per process: the write path asks per batch);
    `engine="questdb"` reads queries/questdb/ (internal: queries/questdb/internal/)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise UnknownQueryError(f"unknown query {name!r}")
    base = _dir(engine)
    path = (base / "internal" if internal else base) / f"{name}.sql"
    if not path.is_file():
        where = " on questdb" if engine == "questdb" else ""
        raise UnknownQueryError(
            f"unknown query {name!r}{where}; available: {', '.join(q.name for q in list_queries(engine))}"
        )
    return parse_query_file(path)


def list_queries(engine: str | None = None) -> list[NamedQuery]:
    """The user-facing queries (queries/internal/ holds the warehouse's own lookups)."""
    return [parse_query_file(p) for p in sorted(_dir(engine).glob("*.sql"))]
