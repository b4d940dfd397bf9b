"""The simulator's statistical watchdog: the bound on a trader's order/fill rate per bucket."""

from __future__ import annotations

import numpy as np

from warehouse.config import WatchdogSettings
from warehouse.sim.watchdog import deviation

BOUND = WatchdogSettings(bucket_s=60, k=6.0, history=60, min_buckets=10, floor=20)


def test_a_burst_after_a_steady_rate_trips() -> None:
    found = deviation([10] * 30 + [60], BOUND)
    assert found is not None
    mean, std, limit = found
    assert mean == 10 and std == 0 and abs(limit - (10 + 6 * 10**0.5)) < 1e-12


def test_steady_poisson_rates_do_not_trip() -> None:
    """No false alarm over 2,000 runs of 60 buckets at rates 0.5–200 per bucket, each checked at
    every bucket as the patrol would (the partial newest bucket can only be smaller)."""
    rng = np.random.default_rng(7)
    alarms = 0
    for rate in rng.uniform(0.5, 200, 2_000):
        counts = rng.poisson(rate, 60).tolist()
        alarms += sum(deviation(counts[: i + 1], BOUND) is not None for i in range(10, 60))
    assert alarms == 0


def test_needs_history_and_the_floor_and_only_upward() -> None:
    assert deviation([5] * 9 + [500], BOUND) is None  # 9 buckets before: fewer than min_buckets
    assert deviation([0] * 30 + [19], BOUND) is None  # past mean + 6σ but under the floor of 20
    assert deviation([0] * 30 + [20], BOUND) is not None
    assert deviation([100] * 30 + [0], BOUND) is None  # a strategy that stops endangers nothing
    # the history window: an old burst does not widen the bound forever
    assert deviation([400] * 5 + [10] * 60 + [60], BOUND) is not None
    assert deviation([400] * 5 + [10] * 55 + [60], BOUND) is None


class _Trader:
    """What the monitor reads of an account: its orders and fills (times), and its halt."""

    def __init__(self) -> None:
        self.orders: list = []
        self.fills: list = []
        self.halted = None


class _Order:
    def __init__(self, ts: int) -> None:
        self.created_at = ts


def test_a_night_without_ticks_is_not_a_quiet_baseline(tmp_path) -> None:
    """One order every 3 s for 30 minutes, a 10-hour gap with no market at all, then the same
    pace again: the morning is not a burst against a night of zeros."""
    from warehouse.config import Settings
    from warehouse.sim.watchdog import RunMonitor, patrol, runs_dir

    settings = Settings(home=tmp_path)
    monitor = RunMonitor(runs_dir(settings), "night", settings.watchdog)
    trader = _Trader()
    ns = 10**9
    day1 = [t * 3 * ns for t in range(600)]
    day2 = [36_000 * ns + t * 3 * ns for t in range(600)]
    for times in (day1, day2):
        for start in range(0, len(times), 40):  # batches of 2 minutes
            chunk = times[start : start + 40]
            trader.orders += [_Order(t) for t in chunk]
            monitor.publish({"steady": trader}, chunk[-1], chunk)
            assert patrol(settings) == (1, [])
    # the same morning after a burst: 10 × the pace trips it
    for t in range(400):
        trader.orders.append(_Order(72_000 * ns + t * 300_000_000))
    monitor.publish({"steady": trader}, 72_000 * ns + 120 * ns, [72_000 * ns + t * ns for t in range(120)])
    watched, trips = patrol(settings)
    assert watched == 1 and [t.trader for t in trips] == ["steady"]
    monitor.close()
