"""The strategy API and the example strategies.

A strategy is a class with callbacks; the simulator calls them in replay order with the
trader's `Account` (submit / cancel / positions / cash / nav):

    on_start(acct)            once, before the first tick
    on_batch(acct, batch)     every replay batch (a polars DataFrame), before its ticks;
                              returns the rows whose ticks it must see (below)
    on_quote(acct, quote)     a quote of the run's symbols
    on_trade(acct, trade)     a trade
    on_fill(acct, fill)       after each of its fills (not those of an order filled on submit)

Per tick (`wants_ticks = True`, on_batch returns None): on_quote / on_trade at every tick —
simple, but then every tick of the run is worked one by one in Python.

Batch (`wants_ticks = False`): on_batch computes the signals over the whole batch, vectorized
(numpy, numba), and returns a boolean array over its rows: on_quote / on_trade are called at
those rows only (`quote.row` / `trade.row` is the row; with None, at none). The simulator does
per-tick work only there and at the ticks of symbols with open orders (matching); between them
it moves the market state (last quotes, volume profiles) on in bulk, to exactly what the per-tick
path would hold at each callback, fill and snapshot. The array is read as the replay advances,
so a callback may mark later rows — e.g. after a fill, the rows where its exit condition holds.
The rows are a promise that the strategy does nothing at the others; each callback must still
be right wherever it is called: `simulate(per_tick=True)` calls every strategy at every tick,
the reference a batch strategy is checked against (tests/unit/test_sim.py).

Orders that fail validation raise OrderRejected subclasses (reason in `.code`); the
examples count them and go on.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

import numpy as np
import polars as pl

from warehouse.errors import OrderRejected
from warehouse.replay import QUOTE
from warehouse.sim.broker import BUY, SELL, Account, Fill, Quote, Trade
from warehouse.sim.costs import NS


class Strategy:
    name: ClassVar[str] = "base"
    wants_ticks: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.rejects: dict[str, int] = {}

    def on_start(self, acct: Account) -> None:
        pass

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> np.ndarray | None:
        return None

    def on_quote(self, acct: Account, quote: Quote) -> None:
        pass

    def on_trade(self, acct: Account, trade: Trade) -> None:
        pass

    def on_fill(self, acct: Account, fill: Fill) -> None:
        pass

    def _submit(self, acct: Account, *args: Any, **kwargs: Any) -> None:
        try:
            acct.submit(*args, **kwargs)
        except OrderRejected as exc:
            self.rejects[exc.code] = self.rejects.get(exc.code, 0) + 1


class NoOp(Strategy):
    """Watches the tape and does nothing: the replay's own throughput."""

    name = "noop"
    wants_ticks = False


class ZScoreMeanReversion(Strategy):
    """Fade moves of the mid beyond `entry` σ of its rolling window; flatten inside `exit` σ.

    params: window (quotes, 60), entry (2.0), exit (0.5), notional (per position, 50,000).
    One market order at a time per symbol; the rolling mean/σ use running sums over the
    window (population σ), reset every `window` quotes to keep rounding bounded.

    Batch API: on_batch computes every quote's z (sim/kernels.py, the window carried from batch
    to batch) and returns the rows where it may act: |z| ≥ entry, and for a symbol it holds, the
    rows where the exit condition holds on its side. What it waits for changes only with its own
    orders, so a symbol's later rows are marked anew when it sends one (none while it works) and
    when one closes (on_fill). ZScorePerTick is the same strategy per tick.
    """

    name = "zscore"
    wants_ticks = False

    def __init__(self, window: int = 60, entry: float = 2.0, exit: float = 0.5, notional: float = 50_000.0) -> None:
        super().__init__(window=window, entry=entry, exit=exit, notional=notional)
        try:
            window, entry, exit, notional = int(window), float(entry), float(exit), float(notional)
        except (TypeError, ValueError):
            raise ValueError("zscore: window is an integer; entry, exit and notional are numbers") from None
        if window < 2 or entry <= exit or notional <= 0:
            raise ValueError("zscore: window ≥ 2, entry > exit, notional > 0")
        self.window, self.entry, self.exit, self.notional = int(window), float(entry), float(exit), float(notional)
        # the rolling window of every symbol seen, by id (kernels.rolling_mid_z)
        self._ids: dict[str, int] = {}
        self._win = np.zeros((0, self.window))
        self._head = np.zeros(0, np.int64)
        self._size = np.zeros(0, np.int64)
        self._sums = np.zeros((0, 2))
        self._count = np.zeros(0, np.int64)
        # the current batch: z per row, the rows to see, the conditions they come from
        self._z = np.zeros(0)
        self._rows = np.zeros(0, bool)
        self._enter = self._exit_long = self._exit_short = self._rows
        self._by_symbol: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # its quote rows and their times

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> np.ndarray | None:
        from warehouse.sim.kernels import rolling_mid_z

        quotes = batch.filter(pl.col("kind") == QUOTE)
        new = [s for s in quotes["symbol"].unique(maintain_order=True).to_list() if s not in self._ids]
        if new:
            self._ids.update({s: len(self._ids) + k for k, s in enumerate(new)})
            grow = len(new)
            self._win = np.concatenate([self._win, np.zeros((grow, self.window))])
            self._head, self._size, self._count = (np.concatenate([a, np.zeros(grow, np.int64)])
                                                   for a in (self._head, self._size, self._count))  # fmt: skip
            self._sums = np.concatenate([self._sums, np.zeros((grow, 2))])
        ids = (pl.when(pl.col("kind") == QUOTE).then(pl.col("symbol").replace_strict(self._ids, default=None))
               .otherwise(-1).cast(pl.Int64))  # fmt: skip
        ids_np = batch.select(ids).to_series().to_numpy(writable=True)  # writable: one compiled signature
        z = np.full(batch.height, np.nan)
        rolling_mid_z(ids_np, batch["bid"].to_numpy(writable=True), batch["ask"].to_numpy(writable=True), self._win,
                      self._head, self._size, self._sums, self._count, z)  # fmt: skip
        self._z = z
        with np.errstate(invalid="ignore"):  # NaN: no z, no row
            self._enter = np.abs(z) >= self.entry
            self._exit_long, self._exit_short = z >= -self.exit, z <= self.exit
        # each symbol's quote rows, ascending, and their times
        at = np.flatnonzero(ids_np >= 0)
        order = np.argsort(ids_np[at], kind="stable")
        starts = np.searchsorted(ids_np[at][order], np.arange(len(self._ids) + 1))
        ts = batch["timestamp"].to_numpy()
        self._by_symbol = {}
        for symbol, i in self._ids.items():
            if starts[i] < starts[i + 1]:
                rows = at[order[starts[i] : starts[i + 1]]]
                self._by_symbol[symbol] = (rows, ts[rows])
        self._rows = self._enter.copy()
        for symbol in self._by_symbol:
            if acct.positions.get(symbol, 0.0) or acct.has_open(symbol):
                self._follow(acct, symbol, 0)
        return self._rows

    def on_quote(self, acct: Account, q: Quote) -> None:
        z = self._z[q.row]
        if math.isnan(z):
            return
        sent = len(acct.orders)
        self._act(acct, q, z)
        if len(acct.orders) != sent:  # an order (working, filled on submit or refused)
            self._follow(acct, q.symbol, q.row + 1)

    def on_fill(self, acct: Account, fill: Fill) -> None:
        if not acct.has_open(fill.symbol):  # its order closed: what it waits for changed
            rows, ts = self._by_symbol.get(fill.symbol, _NO_ROWS)
            k = int(np.searchsorted(ts, fill.ts))  # the fill's row (or an earlier one at its time)
            if k < len(rows):
                self._follow(acct, fill.symbol, int(rows[k]))

    def _follow(self, acct: Account, symbol: str, start: int) -> None:
        """Mark `symbol`'s rows from `start` on for what it waits for now: nothing while its order
        works (its last fill calls on_fill), else entries and the exits of the side it holds."""
        rows = self._by_symbol.get(symbol, _NO_ROWS)[0]
        rows = rows[np.searchsorted(rows, start) :]
        if acct.has_open(symbol):
            self._rows[rows] = False
            return
        pos = acct.positions.get(symbol, 0.0)
        see = self._enter[rows]
        if pos:
            see |= (self._exit_long if pos > 0 else self._exit_short)[rows]
        self._rows[rows] = see

    def _act(self, acct: Account, q: Quote, z: float) -> None:
        if acct.has_open(q.symbol):
            return
        pos = acct.positions.get(q.symbol, 0.0)
        if pos == 0.0:
            if abs(z) >= self.entry:
                qty = round(self.notional / q.mid, 6)
                if qty > 0:
                    self._submit(acct, q.symbol, SELL if z > 0 else BUY, qty, asset_class=q.asset_class)
        elif (pos > 0 and z >= -self.exit) or (pos < 0 and z <= self.exit):
            self._submit(acct, q.symbol, SELL if pos > 0 else BUY, abs(pos), asset_class=q.asset_class)


_NO_ROWS = (np.zeros(0, np.int64), np.zeros(0, np.int64))


class ZScorePerTick(ZScoreMeanReversion):
    """ZScoreMeanReversion on the per-tick API: the window in a deque, updated in on_quote —
    the reference its batch version must equal (tests, `wh bench replay`)."""

    wants_ticks = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.mids: dict[str, deque[float]] = {}
        self.sums: dict[str, list[float]] = {}

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> None:
        return None

    def on_fill(self, acct: Account, fill: Fill) -> None:
        pass

    def on_quote(self, acct: Account, q: Quote) -> None:
        mid = q.mid
        win = self.mids.get(q.symbol)
        if win is None:
            win = self.mids[q.symbol] = deque(maxlen=self.window)
            self.sums[q.symbol] = [0.0, 0.0, 0]
        s = self.sums[q.symbol]
        if len(win) == self.window:
            old = win[0]
            s[0] -= old
            s[1] -= old * old
        win.append(mid)
        s[0] += mid
        s[1] += mid * mid
        s[2] += 1
        if s[2] % self.window == 0:  # re-sum, oldest first (not sum(): its rounding changed in Python 3.12)
            s[0] = s[1] = 0.0
            for m in win:
                s[0] += m
                s[1] += m * m
        if len(win) < self.window:
            return
        mean = s[0] / self.window
        var = s[1] / self.window - mean * mean
        if var <= (mean * 1e-9) ** 2:
            return
        self._act(acct, q, (mid - mean) / math.sqrt(var))


class TWAP(Strategy):
    """Work `total_qty` of `symbol` in N equal slices: Q_slice = Q_total / N every I_spacing = T_total / N.

    params: symbol, side (buy|sell), total_qty, slices N (10), duration T_total seconds (3600),
    start (ns; default: the first tick the strategy sees). Slice k is sent at the first tick
    of the symbol at or after start + k · I_spacing, as a market order (partial fills continue).
    Batch API: the slices' rows are known from the batch's times alone.
    """

    name = "twap"
    wants_ticks = False

    def __init__(self, symbol: str, side: str = "buy", total_qty: float = 1.0, slices: int = 10,
                 duration: float = 3600.0, start: int | None = None) -> None:  # fmt: skip
        super().__init__(symbol=symbol, side=side, total_qty=total_qty, slices=slices, duration=duration, start=start)
        try:
            total_qty, slices, duration = float(total_qty), int(slices), float(duration)
        except (TypeError, ValueError):
            raise ValueError("twap: total_qty and duration are numbers, slices an integer") from None
        if side not in ("buy", "sell") or total_qty <= 0 or slices < 1 or duration <= 0:
            raise ValueError("twap: side buy|sell, total_qty > 0, slices ≥ 1, duration > 0")
        self.symbol, self.side = symbol, BUY if side == "buy" else SELL
        self.q_slice = float(total_qty) / int(slices)
        self.spacing_ns = int(float(duration) / int(slices) * NS)
        self.n = int(slices)
        self.start = start
        self.sent = 0

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> np.ndarray | None:
        if self.sent >= self.n:
            return None
        rows = np.zeros(batch.height, bool)
        mine = np.flatnonzero(((batch["kind"] == QUOTE) & (batch["symbol"] == self.symbol)).to_numpy())
        if not len(mine):
            return rows
        ts = batch["timestamp"].to_numpy()[mine]
        start = self.start if self.start is not None else int(ts[0])
        j = 0
        for k in range(self.sent, self.n):  # one slice per quote at most: the next slice's row comes after
            j = max(j, int(np.searchsorted(ts, start + k * self.spacing_ns)))
            if j >= len(mine):
                break
            rows[mine[j]] = True
            j += 1
        return rows

    def on_quote(self, acct: Account, q: Quote) -> None:
        if q.symbol != self.symbol or self.sent >= self.n:
            return
        if self.start is None:
            self.start = q.ts
        if q.ts >= self.start + self.sent * self.spacing_ns:
            self.sent += 1
            self._submit(acct, self.symbol, self.side, self.q_slice, asset_class=q.asset_class)


STRATEGIES: dict[str, type[Strategy]] = {"noop": NoOp, "zscore": ZScoreMeanReversion, "twap": TWAP}
