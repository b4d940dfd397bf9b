"""Drive strategies with a replay and collect what they did as ledger tables.

`simulate(engine, traders, symbols, since, until)` replays the warehouse (warehouse/replay)
into every trader's account (shared market state, one strategy each), takes portfolio
snapshots every `snapshot_every_s` of event time and at the end (a snapshot at ts holds
every tick and fill before ts — the definition the NAV queries use), and returns Arrow tables
shaped like wh.traders / wh.orders / wh.fills / wh.portfolio_snapshots, ready for
`analytics.ledger.write_ledger`. Everything is a function of the replayed rows and the
parameters: no wall clock, no randomness.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.errors import AmbiguousVenueError, SimulationError
from warehouse.records import FILL_SCHEMA, ORDER_SCHEMA, SNAPSHOT_SCHEMA, TRADER_SCHEMA
from warehouse.replay import QUOTE, Clock, ReplayStats, replay
from warehouse.sim.broker import BUY, Account, Limits, Market, Quote, Trade, positive_number
from warehouse.sim.costs import NS
from warehouse.sim.strategies import Strategy
from warehouse.sim.watchdog import RunMonitor
from warehouse.sql.engines import Engine


@dataclass
class SimResult:
    stats: ReplayStats
    accounts: dict[str, Account]
    strategies: dict[str, Strategy]
    snapshots: list[tuple[str, int, float, float, float, float]] = field(default_factory=list)
    started_at: int = 0

    def venue(self, symbol: str) -> str:
        """The exchange the replay took `symbol` from ('' for a symbol it never saw)."""
        return (self.stats.venues.get(symbol) or [""])[0]

    def tables(self) -> dict[str, pa.Table]:
        """Ledger tables for write_ledger (and --fills-out)."""
        ts_type = pa.timestamp("ns", tz="UTC")
        traders = pa.table({
            "trader": [t for t in self.accounts], "strategy": [s.name for s in self.strategies.values()],
            "params": [json.dumps(s.params, sort_keys=True) for s in self.strategies.values()],
            "initial_cash": [a.initial_cash for a in self.accounts.values()], "currency": ["VCR"] * len(self.accounts),
            "created_at": pa.array([self.started_at] * len(self.accounts), pa.int64()).cast(ts_type),
        })  # fmt: skip
        orders = [o for a in self.accounts.values() for o in a.orders]
        fills = [f for a in self.accounts.values() for f in a.fills]
        side = {1: "buy", -1: "sell"}
        order_t = pa.table({
            "order_id": [o.order_id for o in orders], "trader": [o.trader for o in orders],
            "created_at": pa.array([o.created_at for o in orders], pa.int64()).cast(ts_type),
            "updated_at": pa.array([o.updated_at for o in orders], pa.int64()).cast(ts_type),
            "symbol": [o.symbol for o in orders], "asset_class": [o.asset_class for o in orders],
            "side": [side[o.side] for o in orders], "order_type": [o.order_type for o in orders],
            "time_in_force": [o.tif for o in orders], "post_only": [o.post_only for o in orders],
            "qty": pa.array([o.qty for o in orders], pa.float64()),
            "limit_price": pa.array([o.limit for o in orders], pa.float64()),
            "filled_qty": pa.array([o.filled for o in orders], pa.float64()),
            "avg_price": pa.array([o.notional / o.filled if o.filled else None for o in orders], pa.float64()),
            "status": [o.status for o in orders], "reason": pa.array([o.reason for o in orders], pa.string()),
            "exchange": [self.venue(o.symbol) for o in orders],
        })  # fmt: skip
        fill_t = pa.table({
            "fill_id": [f.fill_id for f in fills], "order_id": [f.order_id for f in fills],
            "trader": [f.trader for f in fills], "timestamp": pa.array([f.ts for f in fills], pa.int64()).cast(ts_type),
            "symbol": [f.symbol for f in fills], "asset_class": [f.asset_class for f in fills],
            "side": [side[f.side] for f in fills], "qty": pa.array([f.qty for f in fills], pa.float64()),
            "price": pa.array([f.price for f in fills], pa.float64()),
            "fee": pa.array([f.fee for f in fills], pa.float64()),
            "slippage": pa.array([f.slippage for f in fills], pa.float64()),
            "exchange": [self.venue(f.symbol) for f in fills],
        })  # fmt: skip
        snaps = self.snapshots
        snap_t = pa.table({
            "trader": [s[0] for s in snaps], "timestamp": pa.array([s[1] for s in snaps], pa.int64()).cast(ts_type),
            "cash": pa.array([s[2] for s in snaps], pa.float64()),
            "positions_value": pa.array([s[3] for s in snaps], pa.float64()),
            "gross_exposure": pa.array([s[4] for s in snaps], pa.float64()),
            "nav": pa.array([s[5] for s in snaps], pa.float64()),
        })  # fmt: skip
        return {
            "traders": traders.cast(TRADER_SCHEMA), "orders": order_t.cast(ORDER_SCHEMA),
            "fills": fill_t.cast(FILL_SCHEMA), "portfolio_snapshots": snap_t.cast(SNAPSHOT_SCHEMA),
        }  # fmt: skip


Sees = bool | memoryview  # every tick / none, or the rows on_batch returned (read as the batch advances)


def simulate(
    engine: Engine,
    traders: Sequence[tuple[str, Strategy]],
    symbols: Sequence[str],
    since: datetime,
    until: datetime,
    *,
    clock: Clock = "event",
    initial_cash: float = 1_000_000.0,
    limits: Limits | None = None,
    snapshot_every_s: int = 3600,
    speed: float | None = None,
    on_batch: Callable[[ReplayStats], None] | None = None,
    batch_rows: int = 262_144,
    exchange: str = "",
    monitor: RunMonitor | None = None,
    per_tick: bool = False,
) -> SimResult:
    """Replay [since, until) of `symbols` (on `exchange`, or wherever they trade) into each (trader
    id, strategy); see the module docstring. The simulator knows an instrument by its symbol, so
    a symbol with ticks from two exchanges in the range is refused (AmbiguousVenueError):
    BTCUSDT on binance and on binance-futures are two books, not one.

    Each tick is worked one by one only where someone must see it (strategies.py: the rows a
    strategy's on_batch returns, or every tick) or an order is open on its symbol; the market
    state moves on in bulk between those (_Tape.advance), to the same state. `per_tick`: every
    tick one by one into every strategy, whatever on_batch returned — the reference.

    With a `monitor` (sim/watchdog.py) the traders' order and fill counts are published after
    every batch and the kill switches it reads are applied before the next."""
    if not traders:
        raise SimulationError("no trader to simulate")
    if len({t for t, _ in traders}) != len(traders):
        raise SimulationError("trader ids must be unique within a run")
    if isinstance(snapshot_every_s, bool) or not isinstance(snapshot_every_s, int) or snapshot_every_s < 1:
        raise SimulationError(f"snapshot interval (--snapshot-every) must be a whole number of seconds ≥ 1, "
                              f"got {snapshot_every_s!r}")  # fmt: skip
    if speed is not None:
        positive_number(speed, "speed (--speed, a multiple of real time)")
    positive_number(initial_cash, "initial cash (--cash)")
    threading.Thread(target=_warm_kernels, name="sim-kernels", daemon=True).start()
    market = Market()
    accounts = {t: Account(t, market, initial_cash=initial_cash, limits=limits) for t, _ in traders}
    strategies = dict(traders)
    result = SimResult(ReplayStats(), accounts, strategies)
    step = snapshot_every_s * NS
    next_snap = 0
    started = False
    for batch in replay(engine, symbols, since, until, clock=clock, speed=speed, stats=result.stats,
                        batch_rows=batch_rows, exchange=exchange):  # fmt: skip
        tape = _Tape(batch)
        if not started:
            mixed = {s: v for s, v in result.stats.venues.items() if len(v) > 1}
            if mixed:
                raise AmbiguousVenueError(
                    "; ".join(f"{s} has ticks from {', '.join(v)}" for s, v in sorted(mixed.items()))
                    + " in this range: choose one venue (--exchange) — the simulator keeps one book per symbol"
                )
            started = True
            result.started_at = int(tape.ts[0])
            next_snap = (int(tape.ts[0]) // step + 1) * step
            for t, s in traders:
                s.on_start(accounts[t])
        if monitor is not None:
            for t, why in monitor.kills().items():
                if t in accounts:
                    accounts[t].halt(why)
        live: list[tuple[Strategy, Account, Sees]] = []
        for t, s in traders:
            acct = accounts[t]
            sees: Sees = False if acct.halted else _sees(s, s.on_batch(acct, batch), batch.height)
            live.append((s, acct, True if per_tick else sees))
        next_snap = _run(tape, market, live, result, next_snap, step)
        if monitor is not None:
            monitor.publish(accounts, market.now, tape.ts)
        if on_batch is not None:
            on_batch(result.stats)
    if started:  # the state after the last tick, stamped like the queries: "everything before ts"
        _snapshot(result, accounts, market.now + 1)
    return result


def _warm_kernels() -> None:
    from warehouse.sim import kernels

    kernels.warm()


def _sees(strategy: Strategy, rows: np.ndarray | None, n: int) -> Sees:
    if rows is None:
        return strategy.wants_ticks
    if not (isinstance(rows, np.ndarray) and rows.dtype == np.bool_ and rows.shape == (n,)
            and rows.flags.c_contiguous):  # fmt: skip
        raise SimulationError(f"{strategy.name}: on_batch returns None or a contiguous boolean array of the "
                              f"batch's {n} rows, got {getattr(rows, 'dtype', type(rows).__name__)} "
                              f"{getattr(rows, 'shape', '')}")  # fmt: skip
    return rows.data  # a view: marks set later by the strategy are seen


def _snapshot(result: SimResult, accounts: dict[str, Account], ts: int) -> None:
    for t, a in accounts.items():
        pv, gross = a.exposure()
        result.snapshots.append((t, ts, a.cash, pv, gross, a.cash + pv))


def _run(tape: _Tape, market: Market, live: list[tuple[Strategy, Account, Sees]], result: SimResult,
         next_snap: int, step: int) -> int:  # fmt: skip
    """One batch: ticks worked one by one where needed, the market moved on in bulk between them,
    snapshots at their boundaries (before the first tick at or after one). Returns the next boundary."""
    every = any(sees is True for _, _, sees in live)
    marks = [sees for _, _, sees in live if isinstance(sees, memoryview)]
    # nothing to see and nothing open: nothing can happen in this batch, and a snapshot needs the
    # market's quotes only when someone holds a position
    idle = not every and not any(market.working.values()) and not any(np.asarray(m).any() for m in marks)
    accounts = result.accounts
    n, lo, done = tape.n, 0, 0  # rows [0, done) are in the market state
    while True:
        stop = min(int(np.searchsorted(tape.ts, next_snap)), n)  # the first row at or after the boundary
        if not idle:
            done = _work(tape, market, live, every, marks, lo, stop, done)
        if stop == n:
            break
        if not idle or any(q for a in accounts.values() for q in a.positions.values()):
            tape.advance(market, done, stop)
            done = stop
        lo = stop
        _snapshot(result, accounts, next_snap)
        next_snap += step
    tape.advance(market, done, n)
    return next_snap


def _work(tape: _Tape, market: Market, live: list[tuple[Strategy, Account, Sees]], every: bool,
          marks: list[memoryview], lo: int, hi: int, done: int) -> int:  # fmt: skip
    """Rows [lo, hi) one by one where someone must see them; returns the first row not yet in the market state."""
    kind, ts, sym, ac, bid, ask, bs, asz, price, size, side = tape.lists()
    working = market.working
    for i in range(lo, hi):
        if not every and not working.get(sym[i]):
            for m in marks:
                if m[i]:
                    break
            else:
                continue
        if i > done:
            tape.advance(market, done, i)
        done = i + 1
        if kind[i] == QUOTE:
            q = Quote(ts[i], sym[i], ac[i], bid[i], ask[i], bs[i], asz[i], row=i)
            market.on_quote(q)
            for strat, acct, sees in live:
                for fill in acct.on_quote(q):
                    strat.on_fill(acct, fill)
                if (sees is True or (sees is not False and sees[i])) and not acct.halted:
                    strat.on_quote(acct, q)
        else:
            tr = Trade(ts[i], sym[i], ac[i], price[i], size[i], side[i], row=i)
            market.on_trade(tr)
            for strat, acct, sees in live:
                for fill in acct.on_trade(tr):
                    strat.on_fill(acct, fill)
                if (sees is True or (sees is not False and sees[i])) and not acct.halted:
                    strat.on_trade(acct, tr)
    return done


class _Tape:
    """A replay batch as the driver reads it: its times as numpy, its columns as Python lists
    (made on first use) for the ticks worked one by one, polars to move the market on in bulk."""

    BULK = 1024  # rows from which moving the market on in bulk (a few polars queries) beats tick by tick

    def __init__(self, batch: pl.DataFrame) -> None:
        self.batch, self.n = batch, batch.height
        self.ts = batch["timestamp"].to_numpy()
        self._lists: tuple[list[Any], ...] | None = None

    def lists(self) -> tuple[list[Any], ...]:
        """kind, timestamp, symbol, asset_class, bid, ask, bid_size, ask_size, price, size, side per row."""
        if self._lists is None:
            self._lists = tuple(self.batch[c].to_list() for c in _COLUMNS)
        return self._lists

    def advance(self, market: Market, a: int, b: int) -> None:
        """Rows [a, b) into the market state, as Market.on_quote / on_trade one by one would leave it."""
        if b <= a:
            return
        if b - a < self.BULK:
            kind, ts, sym, ac, bid, ask, bs, asz, price, size, side = self.lists()
            for i in range(a, b):
                if kind[i] == QUOTE:
                    market.on_quote(Quote(ts[i], sym[i], ac[i], bid[i], ask[i], bs[i], asz[i], row=i))
                else:
                    market.on_trade(Trade(ts[i], sym[i], ac[i], price[i], size[i], side[i], row=i))
            return
        part = self.batch.slice(a, b - a).with_row_index("row", offset=a)
        quotes = part.filter(pl.col("kind") == QUOTE).with_row_index("k")  # k: its place among the quotes
        # the last quote of each symbol, with the seq it would have had; no sizes: unlimited size
        last = quotes.group_by("symbol", maintain_order=True).last()
        for k, row, ts, symbol, ac, bid, ask, bs, asz in last.select("k", "row", *_COLUMNS[1:8]).iter_rows():
            market.quotes[symbol] = Quote(ts, symbol, ac, bid, ask, math.inf if bs is None else bs,
                                          math.inf if asz is None else asz, seq=market._seq + k + 1, row=row)  # fmt: skip
        market._seq += quotes.height
        # volume profiles: each symbol's last 100 displayed sizes and its trades, in order
        sizes = (quotes.filter(pl.col("bid_size").is_finite() & pl.col("ask_size").is_finite())
                 .group_by("symbol").agg(((pl.col("bid_size") + pl.col("ask_size")) / 2.0).tail(100)))  # fmt: skip
        for symbol, mean_sizes in sizes.iter_rows():
            market._profile(symbol).quote_sizes.extend(mean_sizes)
        trades = part.filter(pl.col("kind") != QUOTE).sort("symbol", maintain_order=True)  # stable: in order
        times, trade_sizes, end = trades["timestamp"].to_numpy(), trades["size"].to_numpy(writable=True), 0
        for run, symbol in trades["symbol"].rle().struct.unnest().iter_rows():
            market._profile(symbol).add_trades(times[end : end + run], trade_sizes[end : end + run])
            end += run
        market.now = int(self.ts[b - 1])


_COLUMNS = ("kind", "timestamp", "symbol", "asset_class", "bid", "ask", "bid_size", "ask_size", "price", "size", "side")


def summary(result: SimResult) -> list[dict[str, object]]:
    """Per trader: ticks, orders, fills, fees, slippage, P&L, max drawdown (from the snapshots), rejects."""
    out = []
    for t, a in result.accounts.items():
        navs = np.array([s[5] for s in result.snapshots if s[0] == t] or [a.initial_cash])
        peak = np.maximum.accumulate(np.concatenate([[a.initial_cash], navs]))[1:]
        out.append({
            "trader": t, "strategy": result.strategies[t].name, "ticks": result.stats.ticks,
            "orders": len(a.orders), "fills": len(a.fills), "fees": sum(f.fee for f in a.fills),
            "slippage": sum(f.slippage for f in a.fills), "pnl": float(navs[-1] - a.initial_cash),
            "max_drawdown": float((navs / peak - 1).min()), "buys": sum(1 for f in a.fills if f.side == BUY),
            "rejects": dict(sorted(result.strategies[t].rejects.items())), "halted": a.halted or "",
        })  # fmt: skip
    return out
