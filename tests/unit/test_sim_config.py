"""The simulator refuses settings that cannot give a meaningful run (NaN cash passed every risk
check and produced thousands of fills and NaN NAVs; a zero snapshot interval divided by zero)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from warehouse.errors import SimulationError, WarehouseError
from warehouse.sim.broker import Account, Limits, Market
from warehouse.sim.run import simulate
from warehouse.sim.strategies import STRATEGIES


@pytest.mark.parametrize("cash", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_an_account_needs_finite_positive_cash(cash: float) -> None:
    with pytest.raises(SimulationError, match="cash"):
        Account("A", Market(), initial_cash=cash)


@pytest.mark.parametrize("field", ["max_concentration", "max_leverage", "stale_after_s", "max_orders_per_minute",
                                   "max_notional_per_minute"])  # fmt: skip
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf])
def test_limits_must_be_finite_and_positive(field: str, value: float) -> None:
    with pytest.raises(SimulationError, match=field):
        Limits(**{field: value})


@pytest.mark.parametrize(("kw", "needle"), [
    ({"snapshot_every_s": 0}, "snapshot"),
    ({"snapshot_every_s": -60}, "snapshot"),
    ({"initial_cash": math.nan}, "cash"),
    ({"speed": 0.0}, "speed"),
    ({"speed": math.nan}, "speed"),
])  # fmt: skip
def test_simulate_checks_its_settings_before_reading_anything(kw: dict[str, Any], needle: str) -> None:
    engine: Any = None  # never touched: the checks come first
    with pytest.raises(SimulationError, match=needle):
        simulate(engine, [("t", STRATEGIES["noop"]())], ["BTCUSDT"], datetime(2020, 1, 1, tzinfo=UTC),
                 datetime(2020, 1, 2, tzinfo=UTC), **kw)  # fmt: skip
    assert issubclass(SimulationError, WarehouseError)
