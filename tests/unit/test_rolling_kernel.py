"""The O(1) z-score kernel against a per-window two-pass in long double: random walks at
several price levels and tick sizes (flat runs included), windows 1 … 300, group edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from warehouse.analytics.rolling import zscore_arrays


def reference(bid: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    out = np.empty(len(bid))
    for g in range(len(starts) - 1):
        a, b = starts[g], starts[g + 1]
        for i in range(a, b):
            win = bid[max(a, i - window + 1) : i + 1].astype(np.longdouble)
            mu = win.sum() / len(win)
            sd = np.sqrt(((win - mu) ** 2).sum() / len(win))
            out[i] = np.nan if win.min() == win.max() else float((bid[i] - mu) / sd)
    return out


@pytest.mark.property
@settings(deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.sampled_from([1, 2, 3, 7, 60, 300]),
    level=st.sampled_from([0.0001, 1.0, 100.0, 9_681.92, 1e6]),
    flat=st.floats(0.0, 0.95),
    groups=st.integers(1, 5),
    jumps=st.sampled_from([0.0, 0.002, 0.05]),
)
@example(seed=2977887, window=3, level=0.0001, flat=0.0, groups=1, jumps=0.05)  # prices 3e-9 after a jump:
# the mean rounded at 3e-9 is off by 1e-5 of the window's 1e-19 spread — z comes from the deviations
def test_the_kernel_is_exact(seed: int, window: int, level: float, flat: float, groups: int, jumps: float) -> None:
    """Jumps of 10⁴ ticks, then quiet prices: the anchor (a bid inside the window) keeps the
    deviations within the window's range, so the one-pass variance does not cancel."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 1_500))
    tick = level * 1e-5
    steps = rng.normal(0, 3, n).round() * tick * (rng.random(n) > flat)  # runs of unchanged prices
    steps += (rng.random(n) < jumps) * rng.choice([-1.0, 1.0], n) * tick * 10_000
    bid = np.abs(level + np.cumsum(steps)) + tick
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(groups - 1, n - 1), replace=False)) if n > 1 else []
    starts = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    z, _, _ = zscore_arrays(bid, starts, window)
    ref = reference(bid, starts, window)
    assert np.array_equal(np.isnan(z), np.isnan(ref))  # NULL exactly on the flat windows
    ok = ~np.isnan(ref)
    assert np.all(np.abs(z[ok] - ref[ok]) <= 1e-8 * np.maximum(1.0, np.abs(ref[ok])))


def test_a_flat_window_after_a_jump_has_exactly_the_sqls_mean_and_std() -> None:
    """The jump's square leaves rounding in the sums; a flat window reports the SQL's exact
    values (std 0, mean = the price), not that residue."""
    bid = np.array([1.0] + [1.1] * 8 + [887_090.02] + [1.0] * 15)
    z, mean, std = zscore_arrays(bid, np.array([0, len(bid)], dtype=np.int64), 10)
    assert np.isnan(z[19]) and std[19] == 0.0 and mean[19] == 1.0
    assert np.all(np.isnan(z[19:])) and np.all(std[19:] == 0.0) and np.all(mean[19:] == 1.0)
