"""Frictions per asset class: execution price, fees, and the rolling volume profile.

Execution price of a taking fill of quantity Q (seed article "Building a High-Fidelity
Market Simulation Engine"):

    P_exec = P_mid · (1 ± [Spread/2 + γ · (Q / V_avg)^α])      + for buys, − for sells

Spread is relative (ask − bid) / mid, so with no impact a buy pays the ask. γ and α
(0.5 ≤ α ≤ 1) are per asset class. V_avg is the symbol's traded volume per minute,
averaged over the last `window_minutes` minutes of replayed trades (the minutes since its
first trade while there are fewer); a symbol without trades yet uses the mean displayed
size (bid_size + ask_size) / 2 of its last 100 quotes.

Fees: fee = max(minimum, notional · bps / 10⁴) with maker/taker rates per asset class;
equities and ETFs pay per share (0.005 per share, minimum 1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

NS = 1_000_000_000
MINUTE = 60 * NS


@dataclass(frozen=True)
class AssetRules:
    gamma: float  # impact coefficient
    alpha: float  # impact exponent, 0.5 … 1
    taker_bps: float
    maker_bps: float
    min_fee: float = 0.0
    per_share: float = 0.0  # equities/ETFs: fee per unit instead of bps

    def __post_init__(self) -> None:
        if not 0.5 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0.5, 1], got {self.alpha}")

    def fee(self, qty: float, price: float, *, maker: bool) -> float:
        if self.per_share:
            return max(self.min_fee, self.per_share * qty)
        bps = self.maker_bps if maker else self.taker_bps
        return max(self.min_fee, qty * price * bps / 1e4)


RULES: dict[str, AssetRules] = {
    # γ is per unit of (Q / volume per minute)^α: a square-root law on daily volume with a
    # coefficient of ~0.05 is ~0.0013 on per-minute volume (0.05 / sqrt(1440)).
    "crypto": AssetRules(gamma=0.0020, alpha=0.5, taker_bps=4.0, maker_bps=2.0),
    "equities": AssetRules(gamma=0.0010, alpha=0.6, taker_bps=0.0, maker_bps=0.0, min_fee=1.0, per_share=0.005),
    "etfs": AssetRules(gamma=0.0008, alpha=0.6, taker_bps=0.0, maker_bps=0.0, min_fee=1.0, per_share=0.005),
    "forex": AssetRules(gamma=0.0002, alpha=0.5, taker_bps=0.2, maker_bps=0.1),
    "commodities": AssetRules(gamma=0.0015, alpha=0.7, taker_bps=1.5, maker_bps=1.0, min_fee=2.0),
    "indices": AssetRules(gamma=0.0010, alpha=0.6, taker_bps=1.0, maker_bps=0.5, min_fee=1.0),
}


def exec_price(mid: float, spread_rel: float, qty: float, v_avg: float, side: int, rules: AssetRules) -> float:
    """P_exec for a taking fill; side +1 buy, −1 sell."""
    impact = rules.gamma * (qty / v_avg) ** rules.alpha if v_avg > 0 else 0.0
    return mid * (1.0 + side * (spread_rel / 2.0 + impact))


class VolumeProfile:
    """Traded volume per minute over a rolling window, per symbol (see the module docstring)."""

    def __init__(self, window_minutes: int = 30) -> None:
        self.window = window_minutes
        self.minutes: deque[tuple[int, float]] = deque()  # (minute index, volume)
        self.total = 0.0
        self.first_minute: int | None = None
        self.quote_sizes: deque[float] = deque(maxlen=100)

    def add_trade(self, ts: int, size: float) -> None:
        m = ts // MINUTE
        if self.first_minute is None:
            self.first_minute = m
        if self.minutes and self.minutes[-1][0] == m:
            self.minutes[-1] = (m, self.minutes[-1][1] + size)
        else:
            self.minutes.append((m, size))
        self.total += size
        self._trim(m)

    def add_trades(self, ts: np.ndarray, sizes: np.ndarray) -> None:
        """add_trade for each of many trades (int64 ns, float64; e.g. a replay batch's), with the
        same arithmetic in the same order — the same profile to the last bit."""
        if len(ts) < 16:  # not worth the arrays
            for t, size in zip(ts.tolist(), sizes.tolist(), strict=True):
                self.add_trade(t, size)
            return
        from warehouse.sim.kernels import add_trades

        trade_minutes = ts // MINUTE
        if self.first_minute is None:
            self.first_minute = int(trade_minutes[0])
        n = len(self.minutes)
        minutes = np.empty(n + len(ts), np.int64)
        volumes = np.empty(n + len(ts), np.float64)
        for k, (m, v) in enumerate(self.minutes):
            minutes[k], volumes[k] = m, v
        first, end, self.total = add_trades(minutes, volumes, n, self.total, self.window, trade_minutes, sizes)
        self.minutes = deque(zip(minutes[first:end].tolist(), volumes[first:end].tolist(), strict=True))

    def _trim(self, now: int) -> None:
        """Forget minutes no later v_avg can see (time only moves forward): bounded memory."""
        while self.minutes and self.minutes[0][0] <= now - self.window:
            self.total -= self.minutes.popleft()[1]

    def add_quote(self, bid_size: float, ask_size: float) -> None:
        self.quote_sizes.append((bid_size + ask_size) / 2.0)

    def v_avg(self, ts: int) -> float:
        now = ts // MINUTE
        self._trim(now)
        if self.first_minute is not None:
            span = min(self.window, max(1, now - self.first_minute + 1))
            if self.minutes:
                return max(self.total, 0.0) / span
        if self.quote_sizes:
            return sum(self.quote_sizes) / len(self.quote_sizes)
        return 0.0
