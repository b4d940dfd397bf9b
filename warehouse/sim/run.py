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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.errors import AmbiguousVenueError, SimulationError
from warehouse.records import FILL_SCHEMA, ORDER_SCHEMA, SNAPSHOT_SCHEMA, TRADER_SCHEMA
from warehouse.replay import QUOTE, TRADE, Clock, ReplayStats, replay
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
) -> SimResult:
    """Replay [since, until) of `symbols` (on `exchange`, or wherever they trade) into each (trader
    id, strategy); see the module docstring. The simulator knows an instrument by its symbol, so
    a symbol with ticks from two exchanges in the range is refused (AmbiguousVenueError):
    BTCUSDT on binance and on binance-futures are two books, not one.

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
    market = Market()
    accounts = {t: Account(t, market, initial_cash=initial_cash, limits=limits) for t, _ in traders}
    strategies = dict(traders)
    result = SimResult(ReplayStats(), accounts, strategies)
    per_tick = any(s.wants_ticks for s in strategies.values())
    step = snapshot_every_s * NS
    next_snap: int | None = None
    started = False
    for batch in replay(engine, symbols, since, until, clock=clock, speed=speed, stats=result.stats,
                        batch_rows=batch_rows, exchange=exchange):  # fmt: skip
        ts_all = batch["timestamp"].to_numpy()
        if not started:
            mixed = {s: v for s, v in result.stats.venues.items() if len(v) > 1}
            if mixed:
                raise AmbiguousVenueError(
                    "; ".join(f"{s} has ticks from {', '.join(v)}" for s, v in sorted(mixed.items()))
                    + " in this range: choose one venue (--exchange) — the simulator keeps one book per symbol"
                )
            started = True
            result.started_at = int(ts_all[0])
            next_snap = (int(ts_all[0]) // step + 1) * step
            for t, s in traders:
                s.on_start(accounts[t])
        if monitor is not None:
            for t, why in monitor.kills().items():
                if t in accounts:
                    accounts[t].halt(why)
        for t, s in traders:
            if not accounts[t].halted:
                s.on_batch(accounts[t], batch)
        if per_tick or any(a.open for a in accounts.values()):
            next_snap = _ticks(batch, market, traders, accounts, result, next_snap, step)
        else:
            _fast_forward(batch, market)
            assert next_snap is not None
            while ts_all[-1] >= next_snap:
                _snapshot(result, accounts, next_snap)
                next_snap += step
        if monitor is not None:
            monitor.publish(accounts, market.now, ts_all)
        if on_batch is not None:
            on_batch(result.stats)
    if started:  # the state after the last tick, stamped like the queries: "everything before ts"
        _snapshot(result, accounts, market.now + 1)
    return result


def _snapshot(result: SimResult, accounts: dict[str, Account], ts: int) -> None:
    for t, a in accounts.items():
        pv = a.positions_value()
        result.snapshots.append((t, ts, a.cash, pv, a.gross_exposure(), a.cash + pv))


def _fast_forward(batch: pl.DataFrame, market: Market) -> None:
    """Nobody looks at ticks and no order is open: update the market state per batch, vectorized."""
    quotes = batch.filter(pl.col("kind") == QUOTE)
    if quotes.height:
        last = quotes.group_by("symbol", maintain_order=True).last()
        for row in last.select("timestamp", "symbol", "asset_class", "bid", "ask", "bid_size", "ask_size").iter_rows():
            market.on_quote(Quote(*row))
    trades = batch.filter(pl.col("kind") == TRADE)
    if trades.height:
        # only the minutes a later v_avg can still see: the profile's window before the batch's end
        minute = pl.col("timestamp") // (60 * NS)
        horizon = int(batch["timestamp"][-1]) // (60 * NS) - market.window
        with_m = trades.select("symbol", minute.alias("m"), "size")
        firsts = dict(with_m.group_by("symbol").agg(pl.col("m").min()).iter_rows())
        recent = (with_m.filter(pl.col("m") > horizon).group_by("symbol", "m").agg(pl.col("size").sum())
                  .sort("symbol", "m").group_by("symbol", maintain_order=True).agg("m", "size"))  # fmt: skip
        seen = set()
        for symbol, minutes, sizes in recent.iter_rows():
            market._profile(symbol).absorb(firsts[symbol], minutes, sizes)
            seen.add(symbol)
        for symbol, first in firsts.items():
            if symbol not in seen:
                market._profile(symbol).absorb(first, [], [])
    market.now = int(batch["timestamp"][-1])


def _ticks(batch: pl.DataFrame, market: Market, traders: Sequence[tuple[str, Strategy]],
           accounts: dict[str, Account], result: SimResult, next_snap: int | None, step: int) -> int | None:  # fmt: skip
    cols = [batch[c].to_list() for c in ("kind", "timestamp", "symbol", "asset_class", "bid", "ask", "bid_size",
                                         "ask_size", "price", "size", "side")]  # fmt: skip
    live = [(t, s, accounts[t]) for t, s in traders]
    for kind, ts, symbol, ac, bid, ask, bs, asz, price, size, side in zip(*cols, strict=True):
        while next_snap is not None and ts >= next_snap:
            _snapshot(result, accounts, next_snap)
            next_snap += step
        if kind == QUOTE:
            q = Quote(ts, symbol, ac, bid, ask, bs, asz)
            market.on_quote(q)
            for _, strat, acct in live:
                for fill in acct.on_quote(q):
                    strat.on_fill(acct, fill)
                if strat.wants_ticks and not acct.halted:
                    strat.on_quote(acct, q)
        else:
            tr = Trade(ts, symbol, ac, price, size, side)
            market.on_trade(tr)
            for _, strat, acct in live:
                for fill in acct.on_trade(tr):
                    strat.on_fill(acct, fill)
                if strat.wants_ticks and not acct.halted:
                    strat.on_trade(acct, tr)
    return next_snap


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
