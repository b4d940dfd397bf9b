"""The compiled O(1) rolling z-score kernel of analytics/rolling.py (imported on first use: numba
takes ~0.5 s to import). Top-level functions, so numba's disk cache serves every later process
(a kernel defined inside a function was compiled again by each, ~0.6 s, and added a cache file
each time)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def window_sums(bid: np.ndarray, first: int, last: int, anchor: float) -> tuple[float, float]:
    """Σ(bid − anchor) and Σ(bid − anchor)² over rows first … last."""
    s1 = 0.0
    s2 = 0.0
    for j in range(first, last + 1):
        d = bid[j] - anchor
        s1 += d
        s2 += d * d
    return s1, s2


@numba.njit(cache=True, nogil=True)
def zscore_kernel(bid: np.ndarray, starts: np.ndarray, window: int, z: np.ndarray, mean: np.ndarray,
                  std: np.ndarray, changed: np.ndarray) -> None:  # fmt: skip
    for g in range(len(starts) - 1):
        a, b = starts[g], starts[g + 1]
        changes = 0  # bid changes from the group's first row up to row i
        anchor = bid[a]
        s1 = 0.0
        s2 = 0.0
        removed = 0.0  # the largest squared deviation taken out of the sums since they were summed
        in_block = 0  # rows since the block's anchor (no integer division per row)
        for i in range(a, b):
            if i > a and bid[i] != bid[i - 1]:
                changes += 1
            changed[i] = changes
            first = i - window + 1
            if first < a:
                first = a
            if in_block == 0:  # a new block: new anchor, sums recomputed over the window
                anchor = bid[i]
                s1, s2 = window_sums(bid, first, i, anchor)
                removed = 0.0
            else:
                d = bid[i] - anchor
                s1 += d
                s2 += d * d
                if i - window >= a:  # the row leaving the window
                    d = bid[i - window] - anchor
                    s1 -= d
                    s2 -= d * d
                    if d * d > removed:
                        removed = d * d
            in_block += 1
            if in_block == window:
                in_block = 0
            n = i - first + 1
            m1 = s1 / n
            var = s2 / n - m1 * m1
            if removed > 1e5 * var and changes != changed[first]:
                # a far price (a jump) left the window: its square's rounding is still in
                # the sums and would show against this small variance — sum again
                s1, s2 = window_sums(bid, first, i, anchor)
                removed = 0.0
                m1 = s1 / n
                var = s2 / n - m1 * m1
            if var < 0.0:
                var = 0.0
            if changes == changed[first]:  # flat: no change after the window's first row
                mean[i] = bid[i]  # exactly, as the SQL (no rounding left by earlier prices)
                std[i] = 0.0
                z[i] = np.nan
            else:
                sd = np.sqrt(var)
                mean[i] = anchor + m1
                std[i] = sd
                # from the deviations, not bid − mean: the mean rounded to the price's
                # precision can be off by 1e-5 of a spread 10¹¹ times smaller than the price
                z[i] = ((bid[i] - anchor) - m1) / sd
