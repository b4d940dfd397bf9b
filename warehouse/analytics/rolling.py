"""The rolling z-score of every symbol at once, exact, in O(1) per row (issue 15).

`queries/zscore.sql` stays the reference and the analysts' path: per row it builds the window's
list of bids and sums it twice (two-pass), O(W) per row. Here the same numbers come from one
pass over the quotes in the query's order (exchange, symbol, timestamp, received_at, seq), compiled with
numba:

- sums of deviations from an anchor — the bid at the start of each block of W rows of the
  symbol. At every block start the window's sums are recomputed from the rows themselves
  (O(W) once per W rows), so rounding never accumulates past one block; between, one row is
  added and one removed. Prices are summed as small deviations from a nearby price, not at
  price magnitude, so the variance S2/n − (S1/n)² does not cancel catastrophically;
- a price far from the window's (a jump) leaves rounding in the sums when it is taken out:
  when the largest deviation removed since the last summation is 10⁵ × the window's variance,
  the window is summed again (rare: only after jumps);
- the window is flat (z NULL, as the SQL's `arrayMin = arrayMax`) exactly when no bid changed
  inside it: an integer prefix count of changes, no floating point involved.

mean = anchor + S1/n, std = √(S2/n − (S1/n)²) (population, as the SQL), z = (bid − mean)/std.
Checked against a per-window two-pass in long double (tests/integration/test_rolling.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.sql import queries
from warehouse.sql.engines import Engine

STORED_WINDOW = 60  # the window whose z-score the sinks store with each quote (queries/zscore.sql's default)
_KERNEL: Any = None


def _kernel() -> Any:
    """Compiled on first use (about a second; cached on disk by numba afterwards)."""
    global _KERNEL
    if _KERNEL is None:
        import numba

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

        _KERNEL = zscore_kernel
    return _KERNEL


def zscore_arrays(bid: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, std) per row of `bid`, rows grouped by symbol in order; group g is
    bid[starts[g]:starts[g+1]]. z is NaN where the SQL gives NULL (a flat window). Bids are
    finite (the sanitizer stores no other): a NaN would spoil the sums until the next block."""
    if window < 1:
        raise ValueError("window ≥ 1")
    n = len(bid)
    z, mean, std = np.empty(n), np.empty(n), np.empty(n)
    changed = np.empty(n, dtype=np.int64)  # per row: bid changes since its symbol's first row
    _kernel()(np.ascontiguousarray(bid, dtype=np.float64), np.ascontiguousarray(starts, dtype=np.int64),
              int(window), z, mean, std, changed)  # fmt: skip
    return z, mean, std


def read_input(engine: Engine) -> tuple[pa.Table, np.ndarray]:
    """Every quote in window order (exchange, symbol, time) and where each instrument's rows
    start (plus the end): the kernel's input."""
    table = queries.load("zscore_input", internal=True).run(engine, {})
    n = table.num_rows
    changed = np.zeros(max(n - 1, 0), dtype=bool)
    for name in ("exchange", "symbol"):  # a row starts an instrument where either differs from the row before
        column = table.column(name).combine_chunks()
        if n > 1:
            changed |= pc.not_equal(column.slice(1), column.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.flatnonzero(changed) + 1, [n]]).astype(np.int64)
    return table, starts


def zscore_all(engine: Engine, window: int = 60) -> pa.Table:
    """Every quote's rolling z-score (exchange, symbol, timestamp, bid, rolling_mean,
    rolling_std, z_score), as queries/zscore.sql computes it per instrument, oldest first."""
    table, starts = read_input(engine)
    bid = table.column("bid").to_numpy()
    z, mean, std = zscore_arrays(bid, starts, window)
    return pa.table({
        "exchange": table.column("exchange"), "symbol": table.column("symbol"), "timestamp": table.column("timestamp"),
        "bid": bid, "rolling_mean": mean, "rolling_std": std, "z_score": pa.array(z, from_pandas=True),
    })  # fmt: skip
