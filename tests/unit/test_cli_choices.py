"""The CLI's choices that mirror a registry in the library stay equal to it."""

from __future__ import annotations

from warehouse.analytics.materialize import TARGETS
from warehouse.cli.common import EngineChoice, EnginesChoice, Materialized, Strategy
from warehouse.sim.strategies import STRATEGIES
from warehouse.sql.engines import ENGINES


def test_strategies() -> None:
    assert [s.value for s in Strategy] == list(STRATEGIES)


def test_materialized_tables() -> None:
    assert [t.value for t in Materialized] == list(TARGETS)


def test_engines() -> None:
    assert [e.value for e in EngineChoice] == list(ENGINES)
    assert [e.value for e in EnginesChoice] == [*ENGINES, "all"]
