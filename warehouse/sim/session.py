"""A replay session as `wh replay` and Dagster's `replay` job run it: traders from a strategy,
its parameters and a sweep (one trader per combination), history from one engine, the ledger
(orders, fills, NAV snapshots) written to the chosen engines."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from warehouse.config import Settings
from warehouse.errors import SimulationError
from warehouse.sim.run import SimResult, simulate
from warehouse.sim.strategies import STRATEGIES, Strategy
from warehouse.sim.watchdog import RunMonitor, runs_dir


def parse_value(text: str) -> Any:
    """A strategy parameter from text: an int, else a float, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def make_traders(strategy: str, params: Mapping[str, Any], sweep: Mapping[str, Sequence[Any]],
                 name: str | None = None) -> list[tuple[str, Strategy]]:  # fmt: skip
    """(trader id, strategy) per combination of the sweep's values: `name` (default the strategy's)
    alone, or name-1, name-2, … when the sweep has several."""
    cls = STRATEGIES.get(strategy)
    if cls is None:
        raise SimulationError(f"unknown strategy {strategy!r}; choose {', '.join(STRATEGIES)}")
    for k, values in sweep.items():
        if not values:
            raise SimulationError(f"sweep {k}=: no values; give NAME=V1,V2,… (e.g. {k}=30,60,120)")
    combos = [dict(zip(sweep, c, strict=True)) for c in itertools.product(*sweep.values())] if sweep else [{}]
    base = name or strategy
    try:
        return [(base if len(combos) == 1 else f"{base}-{i + 1}", cls(**{**params, **c})) for i, c in enumerate(combos)]
    except (TypeError, ValueError) as exc:
        raise SimulationError(f"{strategy} parameters: {exc}") from None


def replay_session(settings: Settings, traders: list[tuple[str, Strategy]], symbols: Sequence[str], since: datetime,
                   until: datetime, *, source: str = "duckdb", write_to: Sequence[str] = ("duckdb", "clickhouse"),
                   clock: str = "event", cash: float = 1_000_000.0, snapshot_every_s: int = 3600,
                   speed: float | None = None, exchange: str = "", run: str | None = None,
                   on_batch: Callable[[Any], None] | None = None) -> tuple[SimResult, dict[str, pa.Table]]:  # fmt: skip
    """Replay `symbols` (["ALL"]: every symbol with quotes) of [since, until) from `source` into the
    traders; write the ledger to `write_to`; return the result and its ledger tables. While it
    runs, the watchdog (sim/watchdog.py) sees it as `run` (default replay-<pid>-<time>)."""
    from warehouse.analytics import run as run_query
    from warehouse.analytics.ledger import write_ledger
    from warehouse.sql.engines import open_engine
    from warehouse.sql.migrate import migrate

    if until <= since:
        raise SimulationError("the end of the range must be after its start")
    engine = open_engine(source, settings, read_only=True, for_replay=True)
    try:
        wanted = [s.strip() for s in symbols if s.strip()]
        if wanted == ["ALL"]:
            wanted = sorted(set(run_query(engine, "symbols", limit=100_000).column("symbol").to_pylist()))
        if not wanted:
            raise SimulationError("name at least one symbol (or ALL)")
        monitor = RunMonitor(runs_dir(settings), run or f"replay-{os.getpid()}-{time.time_ns()}", settings.watchdog)
        try:
            result = simulate(engine, traders, wanted, since, until, clock=clock, initial_cash=cash,  # type: ignore[arg-type]
                              snapshot_every_s=snapshot_every_s, speed=speed, on_batch=on_batch, exchange=exchange,
                              monitor=monitor)  # fmt: skip
        finally:
            monitor.close()
    finally:
        engine.close()
    if result.stats.ticks == 0:
        venue = f" on {exchange}" if exchange else ""
        raise SimulationError(f"no ticks of {', '.join(wanted)}{venue} in [{since.isoformat()}, {until.isoformat()}) "
                              f"on {source}")  # fmt: skip
    tables = result.tables()
    for target in write_to:
        eng = open_engine(target, settings)
        try:
            migrate(eng)
            write_ledger(eng, tables)
        finally:
            eng.close()
    return result, tables
