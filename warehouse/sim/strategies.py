"""The strategy API and the example strategies.

A strategy is a class with callbacks; the simulator calls them in replay order with the
trader's `Account` (submit / cancel / positions / cash / nav):

    on_start(acct)            once, before the first tick
    on_quote(acct, quote)     every quote of the run's symbols
    on_trade(acct, trade)     every trade
    on_fill(acct, fill)       after each of its fills
    on_batch(acct, batch)     every replay batch (a polars DataFrame) before its ticks —
                              batch-friendly strategies work here; with wants_ticks = False
                              the per-tick callbacks are skipped entirely

Orders that fail validation raise OrderRejected subclasses (reason in `.code`); the
examples count them and go on.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

import polars as pl

from warehouse.errors import OrderRejected
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

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> None:
        pass

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
    """

    name = "zscore"

    def __init__(self, window: int = 60, entry: float = 2.0, exit: float = 0.5, notional: float = 50_000.0) -> None:
        super().__init__(window=window, entry=entry, exit=exit, notional=notional)
        try:
            window, entry, exit, notional = int(window), float(entry), float(exit), float(notional)
        except (TypeError, ValueError):
            raise ValueError("zscore: window is an integer; entry, exit and notional are numbers") from None
        if window < 2 or entry <= exit or notional <= 0:
            raise ValueError("zscore: window ≥ 2, entry > exit, notional > 0")
        self.window, self.entry, self.exit, self.notional = int(window), float(entry), float(exit), float(notional)
        self.mids: dict[str, deque[float]] = {}
        self.sums: dict[str, list[float]] = {}

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
        if s[2] % self.window == 0:  # re-sum: running sums drift
            s[0], s[1] = sum(win), sum(m * m for m in win)
        if len(win) < self.window:
            return
        mean = s[0] / self.window
        var = s[1] / self.window - mean * mean
        if var <= (mean * 1e-9) ** 2:
            return
        z = (mid - mean) / math.sqrt(var)
        if acct.has_open(q.symbol):
            return
        pos = acct.positions.get(q.symbol, 0.0)
        if pos == 0.0:
            if abs(z) >= self.entry:
                qty = round(self.notional / mid, 6)
                if qty > 0:
                    self._submit(acct, q.symbol, SELL if z > 0 else BUY, qty, asset_class=q.asset_class)
        elif (pos > 0 and z >= -self.exit) or (pos < 0 and z <= self.exit):
            self._submit(acct, q.symbol, SELL if pos > 0 else BUY, abs(pos), asset_class=q.asset_class)


class TWAP(Strategy):
    """Work `total_qty` of `symbol` in N equal slices: Q_slice = Q_total / N every I_spacing = T_total / N.

    params: symbol, side (buy|sell), total_qty, slices N (10), duration T_total seconds (3600),
    start (ns; default: the first tick the strategy sees). Slice k is sent at the first tick
    of the symbol at or after start + k · I_spacing, as a market order (partial fills continue).
    """

    name = "twap"

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

    def on_quote(self, acct: Account, q: Quote) -> None:
        if q.symbol != self.symbol or self.sent >= self.n:
            return
        if self.start is None:
            self.start = q.ts
        if q.ts >= self.start + self.sent * self.spacing_ns:
            self.sent += 1
            self._submit(acct, self.symbol, self.side, self.q_slice, asset_class=q.asset_class)


STRATEGIES: dict[str, type[Strategy]] = {"noop": NoOp, "zscore": ZScoreMeanReversion, "twap": TWAP}
