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

import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.sql import queries
from warehouse.sql.engines import Engine

STORED_WINDOW = 60  # the window whose z-score the sinks store with each quote (queries/zscore.sql's default)
_KERNEL: Any = None
_LOCK = threading.Lock()


def _kernel() -> Any:
    """Loaded on first use (from numba's disk cache; compiled the first time, about a second)."""
    global _KERNEL
    with _LOCK:
        if _KERNEL is None:
            from warehouse.analytics.rolling_kernel import zscore_kernel

            one = np.zeros(1)
            zscore_kernel(
                one, np.array([0, 1], np.int64), 1, one.copy(), one.copy(), one.copy(), np.zeros(1, np.int64)
            )  # fmt: skip — njit loads (or compiles) at the first call
            _KERNEL = zscore_kernel
    return _KERNEL


def warm_in_background() -> None:
    """Load the kernel on a thread (the sinks that store z-scores start it when they open)."""
    if _KERNEL is None:
        threading.Thread(target=_kernel, name="zscore-kernel", daemon=True).start()


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
