"""The simulator core against hand-computed values: prices, fees, limits, sessions, partial fills, kill switch."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.errors import (
    ConcentrationLimit,
    ExchangeClosed,
    InsufficientMargin,
    LiquidityHalt,
    PostOnlyWouldTake,
    StrategyHalted,
)
from warehouse.sim.broker import BUY, SELL, Account, Limits, Market, Quote, Trade
from warehouse.sim.costs import RULES, AssetRules, VolumeProfile, exec_price
from warehouse.sim.strategies import TWAP, Strategy, ZScoreMeanReversion, ZScorePerTick

NS = 1_000_000_000
MON = int(datetime(2024, 1, 8, 15, 0, tzinfo=UTC).timestamp()) * NS  # Monday 10:00 New York
SAT = int(datetime(2024, 1, 6, 15, 0, tzinfo=UTC).timestamp()) * NS


def quote(m: Market, ts: int, bid: float, ask: float, bs: float = 10.0, asz: float = 10.0, symbol: str = "BTC",
          ac: str = "crypto") -> Quote:  # fmt: skip
    q = Quote(ts, symbol, ac, bid, ask, bs, asz)
    m.on_quote(q)
    return q


def test_execution_price_formula_by_hand() -> None:
    rules = AssetRules(gamma=0.1, alpha=0.5, taker_bps=0, maker_bps=0)
    # mid 100, spread 2 → 0.02 relative; Q/V = 4/16 → sqrt = 0.5 → impact 0.05
    assert exec_price(100.0, 0.02, 4.0, 16.0, BUY, rules) == pytest.approx(100 * (1 + 0.01 + 0.05), rel=1e-15)
    assert exec_price(100.0, 0.02, 4.0, 16.0, SELL, rules) == pytest.approx(100 * (1 - 0.01 - 0.05), rel=1e-15)
    linear = AssetRules(gamma=0.2, alpha=1.0, taker_bps=0, maker_bps=0)
    assert exec_price(50.0, 0.0, 3.0, 12.0, BUY, linear) == pytest.approx(50 * (1 + 0.2 * 0.25), rel=1e-15)
    with pytest.raises(ValueError):
        AssetRules(gamma=0.1, alpha=1.5, taker_bps=0, maker_bps=0)


def test_volume_profile_is_volume_per_minute_over_the_window() -> None:
    p = VolumeProfile(window_minutes=3)
    assert p.v_avg(0) == 0.0
    p.add_quote(4.0, 6.0)
    assert p.v_avg(0) == 5.0  # no trades yet: mean displayed size
    t0 = 1_000 * 60 * NS
    p.add_trade(t0, 6.0)
    p.add_trade(t0 + 10 * NS, 3.0)
    assert p.v_avg(t0 + 20 * NS) == 9.0  # 9 in the first minute
    p.add_trade(t0 + 60 * NS, 3.0)
    assert p.v_avg(t0 + 61 * NS) == 6.0  # 12 over 2 minutes
    assert p.v_avg(t0 + 3 * 60 * NS) == pytest.approx(3.0 / 3)  # minute 0 left the window: 3 over 3
    p.add_trade(t0 + 9 * 60 * NS, 1.5)
    assert p.v_avg(t0 + 9 * 60 * NS) == pytest.approx(1.5 / 3)


def test_volume_profile_keeps_only_its_window_without_being_asked() -> None:
    """A long replay with nobody trading never calls v_avg: absorbing batches must not pile up minutes."""

    p = VolumeProfile(window_minutes=30)
    day = 24 * 60
    for batch in range(0, 20 * day, 150):  # 20 days of 150-minute batches, 1 lot per minute
        p.add_trades(np.arange(batch, batch + 150) * 60 * NS, np.ones(150))
        assert len(p.minutes) <= 30
    p.add_trade((20 * day) * 60 * NS, 4.0)
    assert len(p.minutes) <= 30
    # the window's 29 earlier minutes hold 1 lot each, the last one 4: 33 lots over 30 minutes
    assert p.v_avg((20 * day) * 60 * NS) == pytest.approx(33.0 / 30, rel=1e-12)


def test_many_trades_at_once_leave_the_profile_one_at_a_time_would() -> None:
    """add_trades (compiled, a replay batch's trades) against add_trade per trade: the same minutes,
    volumes and running total to the last bit, through gaps longer than the window."""

    rng = np.random.default_rng(2)
    bulk, one = VolumeProfile(window_minutes=30), VolumeProfile(window_minutes=30)
    t0 = 0
    for n in (5, 400, 15, 2_000, 16, 900):  # below and above the compiled path's threshold
        ts = t0 + np.sort(rng.integers(0, 90 * 60, n)) * NS + rng.integers(0, NS, n)
        sizes = rng.uniform(0.01, 3.0, n)
        bulk.add_trades(ts, sizes)
        for t, size in zip(ts.tolist(), sizes.tolist(), strict=True):
            one.add_trade(t, size)
        assert list(bulk.minutes) == list(one.minutes) and bulk.total == one.total
        assert bulk.v_avg(int(ts[-1])) == one.v_avg(int(ts[-1]))
        t0 = int(ts[-1]) + rng.integers(0, 3) * 45 * 60 * NS


def test_fees_per_asset_class_schedule() -> None:
    assert RULES["crypto"].fee(2.0, 100.0, maker=False) == pytest.approx(2 * 100 * 4 / 1e4)
    assert RULES["crypto"].fee(2.0, 100.0, maker=True) == pytest.approx(2 * 100 * 2 / 1e4)
    assert RULES["equities"].fee(100, 180.0, maker=False) == 1.0  # 0.005 × 100 = 0.5 → minimum 1
    assert RULES["equities"].fee(1000, 180.0, maker=False) == pytest.approx(5.0)
    assert RULES["commodities"].fee(1, 70.0, maker=False) == 2.0


def test_market_order_fills_at_p_exec_with_fee_and_slippage_atomically() -> None:
    m = Market()
    a = Account("A", m)
    m.on_trade(Trade(MON, "BTC", "crypto", 100.0, 16.0, "buy"))  # V_avg = 16 per minute
    quote(m, MON + NS, 99.0, 101.0, asz=10.0)
    order = a.submit("BTC", BUY, 4.0)
    rules = RULES["crypto"]
    p = 100 * (1 + 0.01 + rules.gamma * (4 / 16) ** rules.alpha)
    (f,) = a.fills
    assert order.status == "filled" and f.qty == 4.0 and f.price == pytest.approx(p, rel=1e-15)
    assert f.fee == pytest.approx(4 * p * 4 / 1e4) and f.slippage == pytest.approx((p - 100) * 4)
    assert a.cash == pytest.approx(1_000_000 - 4 * p - f.fee, rel=1e-15) and a.positions["BTC"] == 4.0


def test_partial_fills_across_ticks_as_displayed_size_replenishes() -> None:
    m = Market()
    a = Account("A", m)
    quote(m, MON, 99.0, 101.0, asz=3.0)
    order = a.submit("BTC", BUY, 10.0)
    assert order.status == "partially_filled" and order.filled == 3.0
    for i, size in enumerate((3.0, 2.0, 5.0)):
        q = quote(m, MON + (i + 1) * NS, 99.0, 101.0, asz=size)
        a.on_quote(q)
        a.on_quote(q)  # the same quote offers its size once
    assert [f.qty for f in a.fills] == [3.0, 3.0, 2.0, 2.0] and order.status == "filled"
    assert a.positions["BTC"] == 10.0 and not a.open
    ioc = a.submit("BTC", BUY, 10.0, tif="IOC")
    assert ioc.status == "cancelled" and ioc.reason == "IOC" and ioc.filled == 5.0


def test_a_quote_without_sizes_displays_unlimited_size() -> None:
    """FX feeds publish no sizes (stored NULL): the order is not capped, the volume profile
    ignores the quote, and nothing is NaN."""
    m = Market()
    a = Account("A", m)
    q = Quote(MON, "EURUSD", "forex", 1.0999, 1.1001, None, None)  # type: ignore[arg-type]
    m.on_quote(q)
    order = a.submit("EURUSD", BUY, 50_000.0)
    assert order.status == "filled" and order.filled == 50_000.0
    assert a.fills[0].price >= 1.1001 and a.nav() == a.nav()  # finite, not NaN


def test_limit_orders_rest_and_fill_as_maker_when_trades_print_through() -> None:
    m = Market()
    a = Account("A", m)
    quote(m, MON, 99.0, 101.0)
    with pytest.raises(PostOnlyWouldTake):
        a.submit("BTC", BUY, 1.0, order_type="limit", limit=101.0, post_only=True)
    order = a.submit("BTC", BUY, 5.0, order_type="limit", limit=99.5, post_only=True)
    assert order.status == "new" and not a.fills
    a.on_trade(Trade(MON + NS, "BTC", "crypto", 99.6, 2.0, "sell"))  # above the limit: nothing
    a.on_trade(Trade(MON + 2 * NS, "BTC", "crypto", 99.5, 2.0, "sell"))
    (f,) = a.fills
    assert f.price == 99.5 and f.qty == 2.0 and f.maker and f.fee == pytest.approx(2 * 99.5 * 2 / 1e4)
    # a crossing limit takes, never beyond its price
    cross = a.submit("BTC", SELL, 1.0, order_type="limit", limit=98.0)
    assert cross.status == "filled" and a.fills[-1].price >= 98.0 and not a.fills[-1].maker


def test_sessions_reject_or_queue_for_the_open() -> None:
    m = Market()
    a = Account("A", m)
    quote(m, SAT, 180.0, 180.1, symbol="AAPL", ac="equities")
    with pytest.raises(ExchangeClosed) as info:
        a.submit("AAPL", BUY, 10)
    assert info.value.code == "EXCHANGE_CLOSED" and a.orders[-1].status == "rejected"
    queued = a.submit("AAPL", BUY, 10, queue_if_closed=True)
    assert queued.status == "queued"
    a.on_quote(quote(m, SAT + 3600 * NS, 180.0, 180.1, symbol="AAPL", ac="equities"))
    assert queued.status == "queued" and not a.fills
    a.on_quote(quote(m, MON, 181.0, 181.1, symbol="AAPL", ac="equities"))
    assert queued.status == "filled" and a.fills[0].ts == MON
    quote(m, SAT, 50_000.0, 50_001.0)  # crypto trades on Saturdays
    assert a.submit("BTC", BUY, 0.1).status == "filled"


def test_liquidity_halts() -> None:
    m = Market()
    a = Account("A", m, limits=Limits(stale_after_s=60))
    m.now = MON
    with pytest.raises(LiquidityHalt):
        a.submit("BTC", BUY, 1.0)  # no quote at all
    quote(m, MON, 99.0, 101.0, asz=0.0)
    with pytest.raises(LiquidityHalt, match="displayed size"):
        a.submit("BTC", BUY, 1.0)
    m.now = MON + 61 * NS
    with pytest.raises(LiquidityHalt, match="fresh"):
        a.submit("BTC", SELL, 1.0)


def test_concentration_and_margin_limits_allow_reducing_trades() -> None:
    m = Market()
    a = Account("A", m)
    quote(m, MON, 99.0, 101.0, asz=1e9, bs=1e9)
    with pytest.raises(ConcentrationLimit) as info:
        a.submit("BTC", BUY, 2_600)  # 260,000 of 1,000,000 NAV > 25 %
    assert info.value.code == "CONCENTRATION_LIMIT"
    a.submit("BTC", BUY, 2_400)
    for i, sym in enumerate(("ETH", "SOL", "XRP", "ADA", "DOT", "BNB", "LTC", "AVAX", "TRX")):
        quote(m, MON + i, 99.0, 101.0, symbol=sym, asz=1e9, bs=1e9)
        try:
            a.submit(sym, BUY, 2_400)
        except InsufficientMargin as exc:
            assert exc.code == "INSUFFICIENT_MARGIN" and a.gross_exposure() + 240_000 > 2 * a.nav()
            break
    else:
        pytest.fail("2:1 leverage never bound")
    a.submit("BTC", SELL, 1_000)  # reducing: allowed however full the book is
    assert a.positions["BTC"] == 1_400


def test_kill_switch_cancels_open_orders_and_halts() -> None:
    m = Market()
    a = Account("A", m, limits=Limits(max_orders_per_minute=5))
    quote(m, MON, 99.0, 101.0)
    resting = a.submit("BTC", BUY, 1.0, order_type="limit", limit=90.0)
    for _ in range(4):
        a.submit("BTC", BUY, 0.01)
    with pytest.raises(StrategyHalted) as info:
        a.submit("BTC", BUY, 0.01)
    assert info.value.code == "KILL_SWITCH" and resting.status == "cancelled" and resting.reason == "KILL_SWITCH"
    with pytest.raises(StrategyHalted):
        a.submit("BTC", SELL, 0.01)
    b = Account("B", m, limits=Limits(max_notional_per_minute=500.0))
    b.submit("BTC", BUY, 3.0)  # ~303 traded
    b.submit("BTC", BUY, 3.0)  # ~606 > 500 within the minute
    assert b.halted and "traded within a minute" in b.halted


def test_twap_slices_by_hand() -> None:
    m = Market()
    a = Account("A", m)
    s = TWAP("BTC", side="buy", total_qty=6.0, slices=3, duration=600)
    assert s.q_slice == 2.0 and s.spacing_ns == 200 * NS
    for sec in range(0, 700, 50):
        q = quote(m, MON + sec * NS, 99.0, 101.0)
        a.on_quote(q)
        s.on_quote(a, q)
    assert [(o.created_at - MON) // NS for o in a.orders] == [0, 200, 400]
    assert [o.qty for o in a.orders] == [2.0, 2.0, 2.0] and a.positions["BTC"] == 6.0


def test_zscore_strategy_fades_a_spike_and_flattens() -> None:
    m = Market()
    a = Account("A", m)
    s = ZScorePerTick(window=20, entry=2.0, exit=0.5, notional=10_000)  # driven tick by tick
    mids = [100.0 + 0.1 * (i % 2) for i in range(20)] + [103.0] + [100.05] * 25
    for i, mid in enumerate(mids):
        q = quote(m, MON + i * NS, mid - 0.01, mid + 0.01, asz=1e6, bs=1e6)
        a.on_quote(q)
        s.on_quote(a, q)
    sides = [o.side for o in a.orders]
    assert sides[:2] == [SELL, BUY] and a.positions["BTC"] == pytest.approx(0.0)
    assert a.orders[0].created_at == MON + 20 * NS  # on the spike


def test_a_failing_fill_changes_nothing() -> None:
    class Broken(AssetRules):
        def fee(self, qty: float, price: float, *, maker: bool) -> float:
            raise RuntimeError("fee schedule unavailable")

    m = Market()
    a = Account("A", m, rules={"crypto": Broken(gamma=0.001, alpha=0.5, taker_bps=1, maker_bps=1)})
    quote(m, MON, 99.0, 101.0)
    with pytest.raises(RuntimeError):
        a.submit("BTC", BUY, 1.0)
    assert a.cash == 1_000_000.0 and a.positions.get("BTC", 0.0) == 0.0 and not a.fills
    assert a.orders[0].filled == 0.0


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["crypto", "forex", "commodities", "equities", "etfs", "indices"]),
       st.integers(min_value=1_500_000_000 * 10**9, max_value=2_000_000_000 * 10**9))  # fmt: skip
def test_an_orders_session_check_agrees_with_the_vectorized_sessions(asset_class: str, ts: int) -> None:
    """The simulator checks one order at a time through a cache of each day's minutes (session
    edges fall on whole minutes, DST shifts included): the same answer as warehouse.sessions for any ns."""
    from warehouse.sessions import is_open
    from warehouse.sim.broker import session_open

    assert session_open(asset_class, ts) == bool(is_open(asset_class, np.array([ts]))[0])
    edge = ts - ts % (60 * 10**9)  # the first and last ns of the minute too
    assert session_open(asset_class, edge) == bool(is_open(asset_class, np.array([edge]))[0])
    assert session_open(asset_class, edge + 60 * 10**9 - 1) == bool(
        is_open(asset_class, np.array([edge + 60 * 10**9 - 1]))[0]
    )


# ---------------------------------------------------------------- batch path = per-tick path

SYMBOLS = {  # symbol: (asset class, first mid, displayed sizes (None: a feed without sizes), share of trades)
    "BTC": ("crypto", 100.0, (1.0, 8.0), 0.2),
    "EUR": ("forex", 1.1, None, 0.2),
    "AAPL": ("equities", 180.0, (5.0, 40.0), 0.2),
    "GC": ("commodities", 2000.0, (0.5, 2.0), 0.2),
    "ETH": ("crypto", 30.0, (2.0, 20.0), 0.0),  # no trades: impact from the displayed sizes
}


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory):
    """A DuckDB warehouse with 25,000 ticks of 5 symbols over 10 hours around the New York open
    (equity orders before it are refused): random walks with spikes, ties in time across symbols,
    small displayed sizes (orders fill over several quotes), FX quotes without sizes, a symbol
    without trades."""
    import pyarrow as pa

    from warehouse.records import QUOTE_SCHEMA, TRADE_SCHEMA
    from warehouse.sql.engines import DuckDBEngine
    from warehouse.sql.migrate import migrate

    rng = np.random.default_rng(11)
    ts_type = pa.timestamp("ns", tz="UTC")
    quotes, trades = [], []
    for symbol, (ac, p0, sizes, trade_share) in SYMBOLS.items():
        n = 5_000
        ts = np.sort(MON - 3 * 3600 * NS + rng.integers(0, 10 * 3600, n) * NS)  # whole seconds: ties
        steps = rng.normal(0, 4e-4, n)
        steps[rng.integers(0, n, 40)] += rng.choice([-1, 1], 40) * 6e-3  # spikes the z-score fades
        mid = p0 * np.exp(np.cumsum(steps))
        trade = rng.random(n) < trade_share
        q, t = ~trade, trade
        nq, nt = int(q.sum()), int(t.sum())
        bs, asz = (rng.uniform(*sizes, nq) if sizes else [None] * nq for _ in range(2))
        quotes.append(pa.table({
            "timestamp": pa.array(ts[q]).cast(ts_type), "received_at": pa.array(ts[q] + 1000).cast(ts_type),
            "exchange": ["X"] * nq, "symbol": [symbol] * nq, "asset_class": [ac] * nq,
            "bid": mid[q] * (1 - 1e-4), "ask": mid[q] * (1 + 1e-4), "bid_size": pa.array(bs, pa.float64()),
            "ask_size": pa.array(asz, pa.float64()), "seq": pa.array(np.arange(nq), pa.int64()),
        }).cast(QUOTE_SCHEMA))  # fmt: skip
        trades.append(pa.table({
            "timestamp": pa.array(ts[t]).cast(ts_type), "received_at": pa.array(ts[t] + 1000).cast(ts_type),
            "exchange": ["X"] * nt, "symbol": [symbol] * nt, "asset_class": [ac] * nt,
            "trade_id": [f"{symbol}{i}" for i in range(nt)], "side": rng.choice(["buy", "sell"], nt).tolist(),
            "price": mid[t], "size": rng.uniform(0.1, 5.0, nt), "seq": pa.array([None] * nt, pa.int64()),
        }).cast(TRADE_SCHEMA))  # fmt: skip
    eng = DuckDBEngine(tmp_path_factory.mktemp("sim") / "warehouse.duckdb")
    migrate(eng)
    eng.insert("wh.market_ticks", pa.concat_tables(quotes))
    eng.insert("wh.trades", pa.concat_tables(trades))
    yield eng
    eng.close()


def _ledger(engine, traders, *, per_tick: bool, **kw) -> dict:
    from warehouse.sim.run import simulate

    since, until = datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)
    result = simulate(engine, traders, list(SYMBOLS), since, until, per_tick=per_tick,
                      **{"batch_rows": 1_000, "snapshot_every_s": 900, **kw})  # fmt: skip
    return result.tables()


class Hedger(Strategy):
    """A batch strategy that trades another symbol than the tick's: at every 40th row that is a BTC
    quote, a market order in GC (buy, sell, buy, …) — priced from a GC quote the batch path moved
    into the market in bulk, filled over GC's later quotes."""

    name = "hedger"
    wants_ticks = False

    def on_batch(self, acct: Account, batch: pl.DataFrame) -> np.ndarray:
        return ((batch["kind"] == 0) & (batch["symbol"] == "BTC")).to_numpy() & (np.arange(batch.height) % 40 == 0)

    def on_quote(self, acct: Account, q: Quote) -> None:
        if q.symbol == "BTC" and q.row % 40 == 0:
            self._submit(acct, "GC", BUY if len(acct.orders) % 2 == 0 else SELL, 1.5)


def test_batch_strategies_leave_the_ledger_of_the_per_tick_path(tape) -> None:
    """zscore (batch API) against the same strategy per tick (ZScorePerTick, every tick), with a
    twap, a noop and a Hedger beside them: the same orders, fills and snapshots to the last bit —
    across replay batches of 1,000 ticks and snapshots every 15 minutes, with positions held over both."""
    from warehouse.sim.strategies import NoOp

    def traders(zscore: type[ZScoreMeanReversion]) -> list:
        return [("z", zscore(window=40, notional=2_000)), ("z-fast", zscore(window=12, entry=1.5, notional=500)),
                ("twap", TWAP("GC", side="sell", total_qty=9.0, slices=7, duration=7200)), ("noop", NoOp()),
                ("twap-eth", TWAP("ETH", total_qty=200.0, slices=300, duration=3600)),  # 12 s apart: catches up
                ("hedger", Hedger())]  # fmt: skip

    reference = _ledger(tape, traders(ZScorePerTick), per_tick=True)
    batch = _ledger(tape, traders(ZScoreMeanReversion), per_tick=False)
    for name, table in reference.items():
        assert batch[name].equals(table), name
    orders, fills = reference["orders"].to_pylist(), reference["fills"].to_pylist()
    per_order = Counter(f["order_id"] for f in fills)
    assert sum(n > 1 for n in per_order.values()) > 150 and sum(n == 1 for n in per_order.values()) > 1_000
    assert {o["reason"] for o in orders} >= {None, "EXCHANGE_CLOSED"}
    assert {f["symbol"] for f in fills} == set(SYMBOLS)
    assert sum(o["trader"] == "twap" for o in orders) == 7 and sum(o["trader"] == "twap-eth" for o in orders) == 300
    assert sum(o["trader"] == "hedger" and o["status"] == "filled" for o in orders) > 20
    # a position open at a snapshot: the snapshots mark it
    assert any(s["positions_value"] != 0 for s in reference["portfolio_snapshots"].to_pylist())


def test_the_batch_path_follows_the_kill_switch_and_moves_the_market_in_bulk(tape) -> None:
    """A kill switch tripping mid-batch (notional per minute) stops the batch path where it stops
    the per-tick one; then hourly twap slices alone: the market moves on in bulk over thousands of
    ticks between them (batches of 6,000, hourly snapshots) and they fill at the same prices —
    impact from the bulk-moved volume profile (BTC) and displayed sizes (ETH, no trades)."""
    limits = Limits(max_notional_per_minute=30_000.0)

    def traders() -> list:
        return [("z", ZScoreMeanReversion(window=20, notional=9_000)),
                ("twap-btc", TWAP("BTC", total_qty=50.0, slices=5, duration=5 * 3600)),
                ("twap-eth", TWAP("ETH", side="sell", total_qty=400.0, slices=8, duration=8 * 3600))]  # fmt: skip

    kw = {"limits": limits, "batch_rows": 6_000, "snapshot_every_s": 3600}
    reference = _ledger(tape, traders(), per_tick=True, **kw)
    batch = _ledger(tape, traders(), per_tick=False, **kw)
    for name, table in reference.items():
        assert batch[name].equals(table), name
    orders = reference["orders"].to_pylist()
    assert any(o["reason"] == "KILL_SWITCH" for o in orders)
    assert sum(o["trader"].startswith("twap") and o["status"] == "filled" for o in orders) == 13


def test_the_z_score_kernel_is_the_per_tick_window_arithmetic() -> None:
    """Every quote's z from the compiled kernel, over batches of 97 ticks, equals the deque's running
    sums with their re-sum every `window` quotes — including flat stretches (no z) and symbols that
    start mid-batch."""

    from warehouse.replay import QUOTE, TRADE

    class Seen(ZScorePerTick):
        def _act(self, acct: Account, q: Quote, z: float) -> None:
            self.seen.append((q.ts, z))

    rng = np.random.default_rng(3)
    n = 6_000
    symbol = rng.choice(["A", "B", "C"], n)
    symbol[:500] = "A"
    mid = 50_000 + np.cumsum(rng.normal(0, 5, n))
    mid[1000:1200] = 50_000.0  # flat: variance 0
    kind = np.where(rng.random(n) < 0.1, TRADE, QUOTE)
    ticks = pl.DataFrame({"timestamp": np.arange(n), "kind": kind.astype(np.int8), "symbol": symbol,
                          "bid": mid - 0.5, "ask": mid + 0.5})  # fmt: skip
    acct = Account("A", Market())
    batch_z, tick = ZScoreMeanReversion(window=30), Seen(window=30)
    tick.seen = []
    got = []
    for lo in range(0, n, 97):
        b = ticks.slice(lo, 97)
        batch_z.on_batch(acct, b)
        got += [(lo + i, z) for i, z in enumerate(batch_z._z.tolist()) if not math.isnan(z)]
    for ts, k, s, bid, ask in ticks.iter_rows():
        if k == QUOTE:
            tick.on_quote(acct, Quote(ts, s, "crypto", bid, ask, 1.0, 1.0))
    assert got == tick.seen and len(got) > 4_000


def test_batch_and_per_tick_paths_agree_on_the_tardis_day(home, tardis) -> None:
    """The real BTCUSDT day (10,000 quotes, 10,000 trades in 226 s) with its real displayed sizes:
    zscore and twap, batch against per tick, over replay batches of 2,500 ticks."""
    from typer.testing import CliRunner

    from warehouse.cli.main import app
    from warehouse.config import get_settings
    from warehouse.sim.run import simulate
    from warehouse.sql.engines import open_engine

    r = CliRunner().invoke(app, ["import", "--engine", "duckdb", *map(str, tardis)])
    assert r.exit_code == 0, r.output
    eng = open_engine("duckdb", get_settings(), read_only=True, for_replay=True)
    since, until = datetime(2020, 2, 22, tzinfo=UTC), datetime(2020, 2, 23, tzinfo=UTC)
    try:
        ledgers = [
            simulate(eng, [("z", zscore(window=30, entry=1.5, notional=100_000)),
                           ("twap", TWAP("BTCUSDT", side="sell", total_qty=5.0, slices=40, duration=200))],
                     ["BTCUSDT"], since, until, per_tick=per_tick, batch_rows=2_500, snapshot_every_s=20).tables()
            for zscore, per_tick in ((ZScorePerTick, True), (ZScoreMeanReversion, False))
        ]  # fmt: skip
    finally:
        eng.close()
    for name, table in ledgers[0].items():
        assert ledgers[1][name].equals(table), name
    orders = Counter(o["trader"] for o in ledgers[0]["orders"].to_pylist())
    assert orders["z"] > 50 and orders["twap"] == 40 and ledgers[0]["fills"].num_rows > 5 * orders.total()
