"""Materialized analytics: wh.bars_1m and wh.leaderboard_daily, rebuilt one UTC day at a time.

Each day is computed by a named query (queries/internal/bars_1m_day.sql, queries/leaderboard.sql
at the day's end) and swapped in whole, so re-running a day replaces it:

* DuckDB: DELETE the day and INSERT it in one transaction.
* ClickHouse: the day goes into `<table>_stage`, then `ALTER TABLE … REPLACE PARTITION` moves
  it in atomically (partitions are days). One refresh at a time per table (the stage is shared).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from warehouse.errors import ConfigError
from warehouse.records import MATERIALIZED_SCHEMAS
from warehouse.sql import queries
from warehouse.sql.engines import DuckDBEngine, Engine

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
    table = f"wh.{target.table}"  # from the allowlist above, never from input
    since, until = _bounds(day)
    if isinstance(engine, DuckDBEngine):
        engine.begin()
        try:
            if target.day_column == "day":
                engine.command(f"DELETE FROM {table} WHERE day = $day", {"day": day})
            else:
                engine.command(f"DELETE FROM {table} WHERE {target.day_column} >= $since AND "
                               f"{target.day_column} < $until",
                               {"since": since.replace(tzinfo=None), "until": until.replace(tzinfo=None)})  # fmt: skip
            engine.insert(table, data)
            engine.commit()
        except BaseException:
            engine.rollback()
            raise
        return data.num_rows
    partition = day.strftime("%Y%m%d")  # PARTITION BY toYYYYMMDD(...): digits only
    if data.num_rows == 0:
        engine.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition}'")
        return 0
    engine.command(f"TRUNCATE TABLE {table}_stage")
    engine.insert(f"{table}_stage", data)
    engine.command(f"ALTER TABLE {table} REPLACE PARTITION ID '{partition}' FROM {table}_stage")
    engine.command(f"TRUNCATE TABLE {table}_stage")
    return data.num_rows
