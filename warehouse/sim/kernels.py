"""Compiled loops of the simulator's batch path, each the same float arithmetic, in the same
order, as the per-tick Python it replaces — so a batch run equals a per-tick run to the last
bit. Imported on first use (numba takes ~0.5 s to import); top-level functions, so numba's disk
cache serves every later process."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def rolling_mid_z(
    ids: np.ndarray, bid: np.ndarray, ask: np.ndarray, win: np.ndarray, head: np.ndarray, size: np.ndarray,
    sums: np.ndarray, count: np.ndarray, z: np.ndarray,
) -> None:  # fmt: skip
    """ZScoreMeanReversion's z of the mid, row by row: `ids[i]` the row's symbol (−1: not a
    quote, z stays NaN); per symbol a ring of the last `window` mids (`win`, oldest at `head`,
    `size` of them), running Σmid and Σmid² (`sums`), quotes seen (`count`) — the state a
    later batch goes on from. NaN until the window is full or while its variance is ~0."""
    window = win.shape[1]
    for i in range(len(ids)):
        s = ids[i]
        if s < 0:
            continue
        mid = (bid[i] + ask[i]) / 2.0
        h = head[s]
        if size[s] == window:
            old = win[s, h]
            sums[s, 0] -= old
            sums[s, 1] -= old * old
            win[s, h] = mid
            h = (h + 1) % window
            head[s] = h
        else:
            win[s, (h + size[s]) % window] = mid
            size[s] += 1
        sums[s, 0] += mid
        sums[s, 1] += mid * mid
        count[s] += 1
        if count[s] % window == 0:  # re-sum, oldest first: running sums drift
            s0 = 0.0
            s1 = 0.0
            for k in range(size[s]):
                m = win[s, (h + k) % window]
                s0 += m
                s1 += m * m
            sums[s, 0] = s0
            sums[s, 1] = s1
        if size[s] < window:
            continue
        mean = sums[s, 0] / window
        var = sums[s, 1] / window - mean * mean
        if var <= (mean * 1e-9) ** 2:
            continue
        z[i] = (mid - mean) / math.sqrt(var)


@numba.njit(cache=True, nogil=True)
def add_trades(minutes: np.ndarray, volumes: np.ndarray, n: int, total: float, window: int, trade_minutes: np.ndarray,
               sizes: np.ndarray) -> tuple[int, int, float]:  # fmt: skip
    """VolumeProfile.add_trade for each trade in turn: `minutes`/`volumes` hold the profile's
    (minute, volume) pairs in their first `n` slots and have room for one more per trade.
    Returns (first kept, end, total): the pairs left are [first kept, end)."""
    first = 0
    for k in range(len(trade_minutes)):
        m = trade_minutes[k]
        if n > first and minutes[n - 1] == m:
            volumes[n - 1] = volumes[n - 1] + sizes[k]
        else:
            minutes[n] = m
            volumes[n] = sizes[k]
            n += 1
        total += sizes[k]
        while n > first and minutes[first] <= m - window:
            total -= volumes[first]
            first += 1
    return first, n, total


def warm() -> None:
    """Load both kernels from numba's disk cache (or compile them): njit does it at the first
    call, which costs ~1 s with numba's import — simulate starts this on a thread while the
    replay reads its first slice."""
    ids, one = np.full(1, -1, np.int64), np.zeros(1)
    rolling_mid_z(ids, one, one, np.zeros((1, 2)), ids.copy(), ids.copy(), np.zeros((1, 2)), ids.copy(), one.copy())
    add_trades(np.zeros(1, np.int64), one.copy(), 0, 0.0, 1, np.zeros(0, np.int64), np.zeros(0))
