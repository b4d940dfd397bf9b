"""Compiled helpers of the stateful rules (numba, compiled on first use and cached on disk).

`spike_reference`: for each row, the median of the previous `window` prices of its group —
what `pl.col(px).shift(1).rolling_median(window, min_samples).over(group)` gives, equal to
the last bit (tests/unit/test_sanitize.py checks it against polars), 5× faster: each group
keeps its window sorted (one value out, one in: O(window) per row) instead of sorting a
window per row.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

_KERNEL: Any = None
_LOCK = threading.Lock()
_WARMING = threading.Event()


def warm_in_background() -> None:
    """Import numba and load the kernel (≈ 1 s, from numba's disk cache after the first
    compile) on a thread, while a driver opens its source (a consumer joins its group)."""
    if _KERNEL is None and not _WARMING.is_set():
        _WARMING.set()
        threading.Thread(target=_warm, name="sanitize-kernel", daemon=True).start()


def _warm() -> None:
    _kernel()(np.zeros(1, np.int64), np.ones(1), 1, 2, 1)  # njit loads (or compiles) at the first call


def _kernel() -> Any:
    global _KERNEL
    with _LOCK:
        if _KERNEL is not None:
            return _KERNEL
        import numba

        @numba.njit(cache=True, nogil=True)
        def median_of_previous(g: np.ndarray, px: np.ndarray, n_groups: int, window: int,
                               min_samples: int) -> np.ndarray:  # fmt: skip
            ring = np.empty((n_groups, window))  # each group's last `window` prices, oldest at head
            srt = np.empty((n_groups, window))  # the same values, sorted
            count = np.zeros(n_groups, np.int64)
            head = np.zeros(n_groups, np.int64)
            out = np.empty(len(px))
            for i in range(len(px)):
                k = g[i]
                m = min(count[k], window)
                if m >= min_samples:
                    if m % 2 == 1:
                        out[i] = srt[k, m // 2]
                    else:  # as polars interpolates: lower + (upper − lower) · 0.5
                        lo = srt[k, m // 2 - 1]
                        out[i] = lo + (srt[k, m // 2] - lo) * 0.5
                else:
                    out[i] = np.nan
                x = px[i]
                if m == window:  # the oldest leaves the sorted window
                    old = ring[k, head[k]]
                    j = 0
                    while j < m - 1 and srt[k, j] != old:
                        j += 1
                    for t in range(j, m - 1):
                        srt[k, t] = srt[k, t + 1]
                    m -= 1
                j = m  # x enters it, after equal values
                while j > 0 and srt[k, j - 1] > x:
                    srt[k, j] = srt[k, j - 1]
                    j -= 1
                srt[k, j] = x
                ring[k, head[k]] = x
                head[k] = (head[k] + 1) % window
                count[k] += 1
            return out

        _KERNEL = median_of_previous
        return _KERNEL


def spike_reference(groups: np.ndarray, prices: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    """Per row: the median of its group's previous `window` prices (NaN: fewer than
    `min_samples` of them). Rows in the order they count; prices finite."""
    if len(prices) == 0:
        return np.empty(0)
    g = np.ascontiguousarray(groups, dtype=np.int64)
    return _kernel()(g, np.ascontiguousarray(prices, dtype=np.float64), int(g.max()) + 1, window, min_samples)
