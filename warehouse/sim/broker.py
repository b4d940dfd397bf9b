"""The simulator core: one account per trader, orders, validation, matching, fills, watchdog.

Market state (the last quote and the volume profile per symbol) is shared by every
account of a run; each account sees the full displayed size (accounts do not compete
for liquidity) and starts with `initial_cash` (1,000,000 VCR).

Orders: market or limit; GTC or IOC; post-only limits. Before an order exists it is
validated (in this order): kill switch → session (EXCHANGE_CLOSED, or queued for the open
when asked) → liquidity (LIQUIDITY_HALT: no quote, a quote older than `stale_after_s`, or
no displayed size on the side a market order takes) → post-only crossing → concentration
(|position · mid| after the trade ≤ 25 % of NAV) → margin (gross exposure after the trade
≤ 2 × NAV, i.e. 2:1 leverage). Trades that reduce exposure always pass the last two.

Matching, per tick of the order's symbol:
* taking (market, or a limit the quote crosses): up to the displayed size of the quote
  (ask_size for buys), at P_exec (costs.py) — a limit never fills beyond its price; what
  exceeds the displayed size stays working and fills on later quotes as the book
  replenishes (each new quote is fresh displayed size); IOC cancels the rest at once;
* resting (a limit the quote does not cross, post-only included): fills as maker when a
  trade prints at or through its price, up to the trade's size, at the limit price.

Every fill changes cash and position together (one assignment after all arithmetic);
fee = the asset class's schedule; slippage = |P_exec − mid| · qty in cash.

Kill switch: more than `max_orders_per_minute` orders, or more than
`max_notional_per_minute` traded, within a minute of event time → every open order is
cancelled (reason KILL_SWITCH), the strategy gets no more callbacks and new orders are
refused with StrategyHalted.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from warehouse.errors import (
    ConcentrationLimit,
    ExchangeClosed,
    InsufficientMargin,
    LiquidityHalt,
    OrderRejected,
    PostOnlyWouldTake,
    SimulationError,
    StrategyHalted,
)
from warehouse.sessions import is_open
from warehouse.sim.costs import NS, RULES, AssetRules, VolumeProfile, exec_price

BUY, SELL = 1, -1


@dataclass
class Quote:
    ts: int
    symbol: str
    asset_class: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    seq: int = 0  # position of the quote in the replay: displayed size is per quote
    row: int = -1  # its row in the replay batch (the rows a strategy's on_batch returns)

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


@dataclass
class Trade:
    ts: int
    symbol: str
    asset_class: str
    price: float
    size: float
    side: str
    row: int = -1  # its row in the replay batch


@dataclass
class Order:
    order_id: str
    trader: str
    created_at: int
    symbol: str
    asset_class: str
    side: int
    qty: float
    order_type: str = "market"  # market | limit
    tif: str = "GTC"  # GTC | IOC
    post_only: bool = False
    limit: float | None = None
    filled: float = 0.0
    notional: float = 0.0
    status: str = "new"  # new | queued | partially_filled | filled | cancelled | rejected
    reason: str | None = None
    updated_at: int = 0
    taken_at_quote: int = -1  # seq of the quote this order last took from
    taken_qty: float = 0.0

    @property
    def remaining(self) -> float:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "partially_filled", "queued")


class Fill(NamedTuple):  # immutable; a frozen dataclass took 1.7 µs to build (a NamedTuple 0.3)
    fill_id: str
    order_id: str
    trader: str
    ts: int
    symbol: str
    asset_class: str
    side: int
    qty: float
    price: float
    fee: float
    slippage: float
    maker: bool


@dataclass
class Limits:
    max_concentration: float = 0.25
    max_leverage: float = 2.0
    stale_after_s: float = 300.0
    max_orders_per_minute: int = 120
    max_notional_per_minute: float = 5_000_000.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            positive_number(value, name)


def positive_number(value: float, name: str) -> float:
    """`value` if it is a finite number > 0, else SimulationError (NaN compares false with
    everything, so a NaN limit or balance would pass every check)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise SimulationError(f"{name} must be a finite number > 0, got {value!r}")
    return value


class Market:
    """Shared state of a run: the last quote and the volume profile of every symbol, and the
    symbols with open orders (`working`: their ticks must be matched one by one)."""

    def __init__(self, window_minutes: int = 30) -> None:
        self.quotes: dict[str, Quote] = {}
        self.volume: dict[str, VolumeProfile] = {}
        self.working: dict[str, int] = {}  # symbol → open orders of every account
        self.window = window_minutes
        self.now = 0
        self._seq = 0

    def on_quote(self, q: Quote) -> None:
        self._seq += 1
        q.seq = self._seq
        if q.bid_size is None or q.ask_size is None:  # a feed without sizes (FX): size not displayed, not zero
            q.bid_size = math.inf if q.bid_size is None else q.bid_size
            q.ask_size = math.inf if q.ask_size is None else q.ask_size
        self.quotes[q.symbol] = q
        if math.isfinite(q.bid_size) and math.isfinite(q.ask_size):
            self._profile(q.symbol).add_quote(q.bid_size, q.ask_size)
        self.now = q.ts

    def on_trade(self, t: Trade) -> None:
        self._profile(t.symbol).add_trade(t.ts, t.size)
        self.now = t.ts

    def _profile(self, symbol: str) -> VolumeProfile:
        p = self.volume.get(symbol)
        if p is None:
            p = self.volume[symbol] = VolumeProfile(self.window)
        return p


def session_open(asset_class: str, ts: int) -> bool:
    """Is the market of `asset_class` open at `ts`? Every session edge falls on a whole minute
    (UTC, or New York time whose offsets are whole hours), so the answer is the minute's:
    the minutes of a UTC day are evaluated at once and cached per (asset class, day) — one
    polars evaluation per day, not per order (per minute it was ~0.6 ms an order)."""
    if asset_class == "crypto":
        return True
    day, minute = divmod(ts // _MINUTE_NS, _DAY_MINUTES)
    return _open_minutes(asset_class, day)[minute]


_MINUTE_NS = 60_000_000_000
_DAY_MINUTES = 1440
_TAKING = frozenset({"new", "partially_filled"})  # open and not waiting for the session


@functools.lru_cache(maxsize=4096)
def _open_minutes(asset_class: str, day: int) -> tuple[bool, ...]:
    minutes = np.arange(day * _DAY_MINUTES, (day + 1) * _DAY_MINUTES, dtype=np.int64)
    return tuple(is_open(asset_class, minutes * _MINUTE_NS).tolist())


class Account:
    """One trader: cash, positions, orders, fills and the watchdog."""

    def __init__(self, trader: str, market: Market, *, initial_cash: float = 1_000_000.0,
                 limits: Limits | None = None, rules: dict[str, AssetRules] | None = None) -> None:  # fmt: skip
        self.trader = trader
        self.market = market
        self.initial_cash = positive_number(initial_cash, "initial cash (--cash)")
        self.cash = initial_cash
        self.positions: dict[str, float] = {}
        self.asset_class: dict[str, str] = {}
        self.limits = limits or Limits()
        self.rules = rules or RULES
        self.orders: list[Order] = []
        self.open: dict[str, Order] = {}
        self._open_by_symbol: dict[str, dict[str, Order]] = {}
        self.fills: list[Fill] = []
        self.halted: str | None = None
        self._order_times: deque[int] = deque()
        self._notional: deque[tuple[int, float]] = deque()
        self._notional_sum = 0.0
        self._n_orders = 0
        self._n_fills = 0

    # ------------------------------------------------------------------ valuation
    def exposure(self) -> tuple[float, float]:
        """(positions value, gross exposure), marking each position once (at every order and
        snapshot: inlined, ~0.2 µs a position)."""
        quotes = self.market.quotes
        values = []
        for symbol, qty in self.positions.items():
            if qty:
                q = quotes.get(symbol)
                if q is None:
                    raise LiquidityHalt(f"{symbol} has no quote yet")
                values.append(qty * ((q.bid + q.ask) / 2.0))
        return sum(values), sum(abs(v) for v in values)

    def positions_value(self) -> float:
        return self.exposure()[0]

    def gross_exposure(self) -> float:
        return self.exposure()[1]

    def nav(self) -> float:
        return self.cash + self.positions_value()

    # ------------------------------------------------------------------ orders
    def submit(self, symbol: str, side: int, qty: float, *, order_type: str = "market", limit: float | None = None,
               tif: str = "GTC", post_only: bool = False, queue_if_closed: bool = False,
               asset_class: str | None = None) -> Order:  # fmt: skip
        """Validate and place an order; raises an OrderRejected subclass (the order is kept as rejected)."""
        now = self.market.now
        q = self.market.quotes.get(symbol)
        ac = asset_class or (q.asset_class if q is not None else self.asset_class.get(symbol, "crypto"))
        if side not in (BUY, SELL) or not qty > 0 or order_type not in ("market", "limit") or tif not in ("GTC", "IOC"):
            raise ValueError(f"bad order: side={side} qty={qty} type={order_type} tif={tif}")
        if order_type == "limit" and (limit is None or not limit > 0):
            raise ValueError("a limit order needs a positive limit price")
        if post_only and order_type != "limit":
            raise ValueError("post-only applies to limit orders")
        self._n_orders += 1
        order = Order(f"{self.trader}-{self._n_orders:07d}", self.trader, now, symbol, ac, side, float(qty),
                      order_type, tif, post_only, limit, updated_at=now)  # fmt: skip
        self.orders.append(order)
        self.asset_class[symbol] = ac
        try:
            self._watch_orders(now)
            if not session_open(ac, now):
                if not queue_if_closed:
                    raise ExchangeClosed(f"{ac} session is closed at {now} ns", order_id=order.order_id)
                order.status = "queued"
                self._add_open(order)
                return order
            self._validate(order, q)
        except OrderRejected as exc:
            order.status, order.reason = "rejected", exc.code
            raise
        self._add_open(order)
        if q is not None:
            self._match_quote(order, q)
            if order.tif == "IOC" and order.is_open:
                self._close(order, "cancelled", "IOC")
        return order

    def cancel(self, order_id: str, reason: str = "CANCELLED") -> None:
        order = self.open.get(order_id)
        if order is not None:
            self._close(order, "cancelled", reason)

    def cancel_all(self, reason: str = "CANCELLED") -> None:
        for order in list(self.open.values()):
            self._close(order, "cancelled", reason)

    def has_open(self, symbol: str) -> bool:
        return bool(self._open_by_symbol.get(symbol))

    def _add_open(self, order: Order) -> None:
        self.open[order.order_id] = order
        self._open_by_symbol.setdefault(order.symbol, {})[order.order_id] = order
        working = self.market.working
        working[order.symbol] = working.get(order.symbol, 0) + 1

    def _drop_open(self, order: Order) -> None:
        if self.open.pop(order.order_id, None) is not None:
            self._open_by_symbol[order.symbol].pop(order.order_id)
            self.market.working[order.symbol] -= 1

    def _close(self, order: Order, status: str, reason: str | None) -> None:
        order.status, order.reason, order.updated_at = status, reason, self.market.now
        self._drop_open(order)

    def _validate(self, order: Order, q: Quote | None) -> None:
        lim = self.limits
        if q is None or order.created_at - q.ts > lim.stale_after_s * NS:
            raise LiquidityHalt(f"no fresh quote for {order.symbol}", order_id=order.order_id)
        displayed = q.ask_size if order.side == BUY else q.bid_size
        if order.order_type == "market" and displayed <= 0:
            raise LiquidityHalt(f"no displayed size on the {'ask' if order.side == BUY else 'bid'} of "
                                f"{order.symbol}", order_id=order.order_id)  # fmt: skip
        crosses = order.limit is not None and (q.ask <= order.limit if order.side == BUY else q.bid >= order.limit)
        if order.post_only and crosses:
            raise PostOnlyWouldTake(f"{order.symbol} limit {order.limit} crosses the book", order_id=order.order_id)
        mid = q.mid
        pos = self.positions.get(order.symbol, 0.0)
        new_pos = pos + order.side * order.qty
        value, gross = self.exposure()
        nav = self.cash + value
        if abs(new_pos) > abs(pos) and abs(new_pos * mid) > lim.max_concentration * nav:
            share = (
                f"{abs(new_pos * mid) / nav:.1%} of NAV"
                if nav > 0
                else f"{abs(new_pos * mid):,.0f} with NAV {nav:,.2f}"
            )
            raise ConcentrationLimit(f"{order.symbol} would be {share} (limit {lim.max_concentration:.0%})",
                                     order_id=order.order_id)  # fmt: skip
        new_gross = gross - abs(pos * mid) + abs(new_pos * mid)
        if new_gross > gross and new_gross > lim.max_leverage * nav:
            raise InsufficientMargin(f"gross exposure {new_gross:,.0f} would pass {lim.max_leverage:g} × NAV "
                                     f"{nav:,.0f}", order_id=order.order_id)  # fmt: skip

    def _watch_orders(self, now: int) -> None:
        if self.halted:
            raise StrategyHalted(f"the kill switch halted {self.trader}: {self.halted}")
        self._order_times.append(now)
        while self._order_times and self._order_times[0] <= now - 60 * NS:
            self._order_times.popleft()
        if len(self._order_times) > self.limits.max_orders_per_minute:
            self._trip(f"{len(self._order_times)} orders within a minute (limit {self.limits.max_orders_per_minute})")
            raise StrategyHalted(f"the kill switch halted {self.trader}: {self.halted}")

    def _watch_notional(self, now: int, notional: float) -> None:
        self._notional.append((now, notional))
        self._notional_sum += notional
        while self._notional and self._notional[0][0] <= now - 60 * NS:
            self._notional_sum -= self._notional.popleft()[1]
        if self._notional_sum > self.limits.max_notional_per_minute:
            self._trip(f"{self._notional_sum:,.0f} traded within a minute (limit "
                       f"{self.limits.max_notional_per_minute:,.0f})")  # fmt: skip

    def _trip(self, why: str) -> None:
        self.halted = why
        self.cancel_all("KILL_SWITCH")

    def halt(self, why: str) -> None:
        """The kill switch from outside (the watchdog's patrol): as if a limit had tripped."""
        if not self.halted:
            self._trip(why)

    # ------------------------------------------------------------------ matching
    def on_quote(self, q: Quote) -> list[Fill]:
        mine = self._open_by_symbol.get(q.symbol)
        if not mine:
            return []
        out: list[Fill] = []
        for order in list(mine.values()):
            if order.status == "queued":
                if not session_open(order.asset_class, q.ts):
                    continue
                order.status = "new"
                try:
                    self._validate(order, q)
                except OrderRejected as exc:
                    self._close(order, "rejected", exc.code)
                    continue
            fill = self._match_quote(order, q)
            if fill is not None:
                out.append(fill)
        return out

    def on_trade(self, t: Trade) -> list[Fill]:
        mine = self._open_by_symbol.get(t.symbol)
        if not mine:
            return []
        out: list[Fill] = []
        for order in list(mine.values()):
            if order.status == "queued" or order.limit is None:
                continue
            q = self.market.quotes.get(order.symbol)
            through = t.price <= order.limit if order.side == BUY else t.price >= order.limit
            if not through or q is None:
                continue
            qty = min(order.remaining, t.size)
            if qty > 0:
                out.append(self._fill(order, qty, float(order.limit), q.mid, t.ts, maker=True))
        return out

    def _match_quote(self, order: Order, q: Quote) -> Fill | None:
        if order.status not in _TAKING:
            return None
        side, limit = order.side, order.limit
        crosses = limit is None or (q.ask <= limit if side == BUY else q.bid >= limit)
        if order.post_only or not crosses:
            return None
        if order.taken_at_quote != q.seq:
            order.taken_at_quote, order.taken_qty = q.seq, 0.0
        displayed = (q.ask_size if side == BUY else q.bid_size) - order.taken_qty
        qty = min(order.qty - order.filled, displayed)
        if qty <= 0:
            return None
        mid = (q.bid + q.ask) / 2.0
        spread_rel = (q.ask - q.bid) / mid
        rules = self.rules[order.asset_class]
        profile = self.market.volume.get(order.symbol)
        v_avg = profile.v_avg(q.ts) if profile is not None else 0.0
        price = exec_price(mid, spread_rel, qty, v_avg, side, rules)
        if limit is not None and (price > limit if side == BUY else price < limit):
            return None  # the impact would cross the limit: wait for a better book
        order.taken_qty += qty
        return self._fill(order, qty, price, mid, q.ts, maker=False)

    def _fill(self, order: Order, qty: float, price: float, mid: float, ts: int, *, maker: bool) -> Fill:
        rules = self.rules[order.asset_class]
        fee = rules.fee(qty, price, maker=maker)
        self._n_fills += 1
        fill = Fill(f"{self.trader}-f{self._n_fills:07d}", order.order_id, self.trader, ts, order.symbol,
                    order.asset_class, order.side, qty, price, fee, abs(price - mid) * qty, maker)  # fmt: skip
        # the state change, all at once
        new_cash = self.cash - order.side * qty * price - fee
        new_pos = self.positions.get(order.symbol, 0.0) + order.side * qty
        new_filled = order.filled + qty
        self.cash, self.positions[order.symbol] = new_cash, new_pos
        order.filled, order.notional, order.updated_at = new_filled, order.notional + qty * price, ts
        order.status = "filled" if order.qty - new_filled <= 1e-12 else "partially_filled"
        if order.status == "filled":
            self._drop_open(order)
        self.fills.append(fill)
        self._watch_notional(ts, qty * price)
        return fill
