"""Materialized analytics: wh.bars_1m and wh.leaderboard_daily, rebuilt one UTC day at a time.

Each day is computed by a named query (queries/internal/bars_1m_day.sql, queries/leaderboard.sql
at the day's end) and swapped in whole, so re-running a day replaces it:

the engine's `replace_day` swaps it in atomically (DuckDB: DELETE + INSERT in one
transaction; ClickHouse: build in `<table>_stage`, then `REPLACE PARTITION`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from warehouse.errors import ConfigError
from warehouse.records import MATERIALIZED_SCHEMAS
from warehouse.sql import queries
from warehouse.sql.engines import Engine

ALL_ROWS = 2**62


@dataclass(frozen=True)
class Target:
    table: str
    day_column: str  # DuckDB deletes the day by this column
    build: Callable[[Engine, date], pa.Table]


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _bars_1m(engine: Engine, day: date) -> pa.Table:
    since, until = _bounds(day)
    return queries.load("bars_1m_day", internal=True).run(engine, {"since": since, "until": until})


def _leaderboard(engine: Engine, day: date) -> pa.Table:
    _, end = _bounds(day)
    board = queries.load("leaderboard").run(engine, {"at": end, "limit": ALL_ROWS})
    return board.add_column(0, "day", pa.array([day] * board.num_rows, pa.date32()))


TARGETS = {
    "bars_1m": Target("bars_1m", "bar_start", _bars_1m),
    "leaderboard_daily": Target("leaderboard_daily", "day", _leaderboard),
}


def activity_days(engine: Engine) -> dict[str, list[date]]:
    """Days with trades (bars_1m) and days with fills (leaderboard_daily)."""
    rows = queries.load("activity_days", internal=True).run(engine, {}).to_pylist()
    out: dict[str, list[date]] = {t: [] for t in TARGETS}
    for r in rows:
        out[r["target"]].append(r["day"])
    return out


def refresh(engine: Engine, name: str, day: date) -> int:
    """Rebuild one day of one materialized table; returns the rows it now holds for that day."""
    target = TARGETS.get(name)
    if target is None:
        raise ConfigError(f"unknown materialized table {name!r}; choose {', '.join(TARGETS)}")
    schema = MATERIALIZED_SCHEMAS[name]
    data = target.build(engine, day).select(schema.names).cast(schema)
    engine.replace_day(f"wh.{target.table}", target.day_column, day, data)
    return data.num_rows
