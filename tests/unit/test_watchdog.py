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
