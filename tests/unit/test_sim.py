"""The simulator core against hand-computed values: prices, fees, limits, sessions, partial fills, kill switch."""

from __future__ import annotations

from datetime import UTC, datetime

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
from warehouse.sim.strategies import TWAP, ZScoreMeanReversion

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
        minutes = list(range(batch, batch + 150))
        p.absorb(minutes[0], minutes, [1.0] * len(minutes))
        assert len(p.minutes) <= 30
    p.add_trade((20 * day) * 60 * NS, 4.0)
    assert len(p.minutes) <= 30
    # the window's 29 earlier minutes hold 1 lot each, the last one 4: 33 lots over 30 minutes
    assert p.v_avg((20 * day) * 60 * NS) == pytest.approx(33.0 / 30, rel=1e-12)


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
    s = ZScoreMeanReversion(window=20, entry=2.0, exit=0.5, notional=10_000)
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
    """The simulator checks one order at a time through a per-minute cache (session edges fall
    on whole minutes, DST shifts included): the same answer as warehouse.sessions for any ns."""
    import numpy as np

    from warehouse.sessions import is_open
    from warehouse.sim.broker import session_open

    assert session_open(asset_class, ts) == bool(is_open(asset_class, np.array([ts]))[0])
    edge = ts - ts % (60 * 10**9)  # the first and last ns of the minute too
    assert session_open(asset_class, edge) == bool(is_open(asset_class, np.array([edge]))[0])
    assert session_open(asset_class, edge + 60 * 10**9 - 1) == bool(
        is_open(asset_class, np.array([edge + 60 * 10**9 - 1]))[0]
    )
