"""Every named query on DuckDB and on ClickHouse (chdb), against a pandas/numpy reference.

One warehouse for the module: the real Tardis samples (BTCUSDT, 2020-02-22) plus two
synthetic days of 30 instruments in six asset classes, and a ledger of 40 traders built
here. The references below are written from the definitions in the query headers, on
the raw rows read back with a plain SELECT — never from the queries themselves.
Floats agree to 1e-9 (relative), bars' OHLC, counts, timestamps and ranks exactly.

A test that takes `engine` runs once per engine (the `engine_name` parameter of
tests/integration/conftest.py), on this module's warehouse; the tests that compare the
engines with each other, or drive `wh`, loop over ENGINES themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from warehouse.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
ENGINES = ("duckdb", "clickhouse")
NS = 1_000_000_000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "AAPL", "EURUSD", "CL", "SPY"]
runner = CliRunner()


def wh(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def _engine(name: str):
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    return open_engine(name, get_settings())


def run(engine: Any, query: str, **params) -> pd.DataFrame:
    """Through warehouse.analytics.run, as the CLI does (a symbol on two venues needs `exchange`);
    `engine`: an open engine, or the name of one to open for this query."""
    from warehouse import analytics

    if not isinstance(engine, str):
        return _pandas(analytics.run(engine, query, **params))
    eng = _engine(engine)
    try:
        table = analytics.run(eng, query, **params)
    finally:
        eng.close()
    return _pandas(table)


def _pandas(table: pa.Table) -> pd.DataFrame:
    cols = {}
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_timestamp(f.type):
            cols[f.name] = col.cast(pa.int64()).to_numpy(zero_copy_only=False)  # ns since the epoch
        elif pa.types.is_date(f.type):
            cols[f.name] = col.cast(pa.int32()).to_numpy(zero_copy_only=False)
        elif pa.types.is_dictionary(f.type):
            cols[f.name] = col.cast(pa.string()).to_pylist()
        else:
            cols[f.name] = col.to_pylist() if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) \
                else col.to_numpy(zero_copy_only=False)  # fmt: skip
    return pd.DataFrame(cols)


_RAW: dict[str, pd.DataFrame] = {}  # the module's tables never change once built: read each once


def raw(table: str) -> pd.DataFrame:
    """Rows as stored (DuckDB), timestamps as int64 ns; seq NULL → −1 for ordering (a copy: callers modify it)."""
    if table not in _RAW:
        eng = _engine("duckdb")
        try:
            df = _pandas(eng.query(f"SELECT * FROM wh.{table}"))
        finally:
            eng.close()
        if "seq" in df:
            df["seq"] = df["seq"].fillna(-1).astype(np.int64)
        _RAW[table] = df
    return _RAW[table].copy()


def assert_same(got: pd.DataFrame, want: pd.DataFrame, exact: tuple[str, ...] = (), label: str = "") -> None:
    assert len(got) == len(want), (label, len(got), len(want))
    assert len(want) > 0, label
    for col in want.columns:
        g, w = got[col].to_numpy(), want[col].to_numpy()
        if col in exact or w.dtype.kind in "iuOUMb":
            assert list(g) == list(w), (label, col)
        else:
            g, w = g.astype(float), w.astype(float)
            assert np.array_equal(np.isnan(g), np.isnan(w)), (label, col)
            ok = ~np.isnan(w)
            scale = np.maximum(np.abs(w[ok]), 1e-300)
            err = np.max(np.abs(g[ok] - w[ok]) / scale) if ok.any() else 0.0
            assert err < 1e-9, (label, col, err)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, tardis: tuple[Path, Path]) -> Iterator[Path]:
    from warehouse.sql.engines import close_embedded

    home = tmp_path_factory.mktemp("analytics") / "wh_data"
    _RAW.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WH_HOME", str(home))
        for var in ("WH_CLICKHOUSE_URL", "WH_CLICKHOUSE_HOST"):
            mp.delenv(var, raising=False)
        wh("import", *map(str, tardis))
        wh("generate", "--instruments", "165", "--ticks", "120000", "--days", "2", "--seed", "7")
        _write_ledger()
        wh("refresh")
        yield home
    _RAW.clear()
    close_embedded()


@pytest.fixture
def engine(engine_name: str, warehouse: Path) -> Iterator[Any]:
    """This module's warehouse (not a fresh one), opened on each engine in turn."""
    eng = _engine(engine_name)
    try:
        yield eng
    finally:
        eng.close()


# ---------------------------------------------------------------- the ledger built here

START = int(datetime(2024, 1, 2, tzinfo=UTC).timestamp()) * NS
END = START + 2 * 86_400 * NS
TRADERS = [f"T{i:02d}" for i in range(40)]


def _quotes_sorted() -> pd.DataFrame:
    if "quotes_sorted" not in _RAW:
        q = raw("market_ticks")
        q["mid"] = (q["bid"] + q["ask"]) / 2
        _RAW["quotes_sorted"] = q.sort_values(["timestamp", "received_at", "seq", "bid", "ask"],
                                              kind="stable").reset_index(drop=True)  # fmt: skip
    return _RAW["quotes_sorted"].copy()


# instruments the test traders fill on: the synthetic venues, plus BTCUSDT on the Tardis
# venue — same symbol, another book (quoted only in 2020), which must be marked with its own quotes
VENUES = {"BTCUSDT": "binance", "ETHUSDT": "binance", "AAPL": "XNAS", "EURUSD": "EBS", "CL": "CME", "SPY": "ARCX"}
INSTRUMENTS = [(VENUES[s], s) for s in SYMBOLS] + [("binance-futures", "BTCUSDT")]


def _write_ledger() -> None:
    from warehouse.analytics.ledger import write_ledger

    rng = np.random.default_rng(11)
    q = _quotes_sorted()
    fills = []
    for t in TRADERS:
        n = int(rng.integers(5, 30))
        ts = np.sort(rng.integers(START, END, n))
        ts[1::7] = ts[0::7][: len(ts[1::7])]  # some fills share a timestamp
        ts = np.sort(ts)
        for k, when in enumerate(ts):
            exchange, sym = INSTRUMENTS[int(rng.integers(0, len(INSTRUMENTS)))]
            before = q[(q["exchange"] == exchange) & (q["symbol"] == sym) & (q["timestamp"] < when)]
            mid = before["mid"].iloc[-1] if len(before) else 100.0
            qty = float(np.round(rng.uniform(0.1, 5.0), 3))
            price = float(mid * (1 + rng.normal(0, 5e-4)))
            fills.append({
                "fill_id": f"{t}-{k:03d}", "order_id": f"{t}-o{k:03d}", "trader": t, "timestamp": int(when),
                "symbol": sym, "asset_class": _asset_class(sym), "side": "buy" if rng.random() < 0.55 else "sell",
                "qty": qty, "price": price, "fee": 0.001 * qty * price, "slippage": abs(price - mid) * qty,
                "exchange": exchange,
            })  # fmt: skip
    f = pd.DataFrame(fills)
    assert (f["exchange"] == "binance-futures").sum() > 20 and (f["exchange"] == "binance").sum() > 20
    traders = pd.DataFrame({
        "trader": TRADERS, "strategy": "test", "params": "{}",
        "initial_cash": [1_000_000.0 + 1_000 * (i % 3) for i in range(len(TRADERS))],
        "currency": "VCR", "created_at": START - NS,
    })  # fmt: skip
    tables = {"fills": _arrow(f), "traders": _arrow(traders)}
    for name in ENGINES:
        eng = _engine(name)
        try:
            assert write_ledger(eng, tables) == {"fills": len(f), "traders": len(traders)}
            write_ledger(eng, tables)  # a re-run replaces, never doubles
        finally:
            eng.close()


def _asset_class(symbol: str) -> str:
    return {"BTCUSDT": "crypto", "ETHUSDT": "crypto", "AAPL": "equities", "EURUSD": "forex",
            "CL": "commodities", "SPY": "etfs"}[symbol]  # fmt: skip


def _arrow(df: pd.DataFrame) -> pa.Table:
    t = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(t.schema):
        if f.name in ("timestamp", "created_at", "updated_at"):
            t = t.set_column(i, f.name, t.column(i).cast(pa.timestamp("ns", tz="UTC")))
    return t


# ---------------------------------------------------------------- market analytics


def _bucket(ts: np.ndarray, seconds: int) -> np.ndarray:
    return ts // (seconds * NS) * (seconds * NS)


def _venue(df: pd.DataFrame, symbol: str, exchange: str | None) -> pd.DataFrame:
    """One instrument's rows: the symbol on `exchange` (None: the symbol has one venue)."""
    rows = df[df["symbol"] == symbol]
    if exchange is None:
        assert rows["exchange"].nunique() == 1, (symbol, sorted(set(rows["exchange"])))
        return rows
    return rows[rows["exchange"] == exchange]


def ref_bars(symbol: str, interval: int, exchange: str | None = None) -> pd.DataFrame:
    t = raw("trades")
    t = _venue(t, symbol, exchange).sort_values(["timestamp", "received_at", "seq", "trade_id"], kind="stable")
    t["bar_start"] = _bucket(t["timestamp"].to_numpy(), interval)
    t["pv"] = t["price"] * t["size"]
    g = t.groupby("bar_start", sort=True)
    out = pd.DataFrame({
        "open": g["price"].first(), "high": g["price"].max(), "low": g["price"].min(), "close": g["price"].last(),
        "volume": g["size"].sum(), "vwap": g["pv"].sum() / g["size"].sum(), "trades": g.size(),
    }).reset_index()  # fmt: skip
    return out


def _quote_bars(
    symbol: str, interval: int, exchange: str | None = None
) -> tuple[pd.DataFrame, pd.core.groupby.DataFrameGroupBy]:
    q = _venue(_quotes_sorted(), symbol, exchange).copy()
    q["bar_start"] = _bucket(q["timestamp"].to_numpy(), interval)
    return q, q.groupby("bar_start", sort=True)


# BTCUSDT is on two venues here: the Tardis day (binance-futures, 2020) and the synthetic feed (binance)
@pytest.mark.parametrize(("symbol", "exchange", "interval"), [("BTCUSDT", "binance-futures", 1), ("BTCUSDT", "binance", 60),
                                                              ("ETHUSDT", None, 3600), ("AAPL", None, 86400)])  # fmt: skip
def test_bars_match_the_reference(engine, symbol: str, exchange: str | None, interval: int) -> None:
    want = ref_bars(symbol, interval, exchange)
    venue = {"exchange": exchange} if exchange else {}
    got = run(engine, "bars", symbol=symbol, interval=interval, limit=10**9, **venue)
    assert_same(got, want, exact=("bar_start", "open", "high", "low", "close", "trades"), label=engine.name)
    tail = run(engine, "bars", symbol=symbol, interval=interval, limit=5, **venue)
    assert list(tail["bar_start"]) == list(want["bar_start"].iloc[-5:])  # the newest bars, oldest first


@pytest.mark.parametrize(("symbol", "exchange", "interval"), [("BTCUSDT", "binance", 10), ("EURUSD", None, 900)])
def test_quote_analytics_match_the_reference(engine, symbol: str, exchange: str | None, interval: int) -> None:
    q, g = _quote_bars(symbol, interval, exchange)
    mid_bars = pd.DataFrame({"open": g["mid"].first(), "high": g["mid"].max(), "low": g["mid"].min(),
                             "close": g["mid"].last(), "quotes": g.size()}).reset_index()  # fmt: skip
    q["spread"] = q["ask"] - q["bid"]
    q["bps"] = 1e4 * q["spread"] / q["mid"]
    g = q.groupby("bar_start", sort=True)
    spreads = pd.DataFrame({
        "quotes": g.size(), "spread_mean": g["spread"].mean(), "spread_min": g["spread"].min(),
        "spread_max": g["spread"].max(), "spread_bps_mean": g["bps"].mean(), "mid_mean": g["mid"].mean(),
        "mid_min": g["mid"].min(), "mid_max": g["mid"].max(),
    }).reset_index()  # fmt: skip
    qi = q[q["bid_size"] + q["ask_size"] > 0].copy()
    qi["imb"] = (qi["bid_size"] - qi["ask_size"]) / (qi["bid_size"] + qi["ask_size"])
    gi = qi.groupby("bar_start", sort=True)
    imbalance = pd.DataFrame({"quotes": gi.size(), "imbalance_mean": gi["imb"].mean(),
                              "imbalance_close": gi["imb"].last()}).reset_index()  # fmt: skip
    assert (imbalance["imbalance_mean"].abs() <= 1).all()
    closes = mid_bars[["bar_start", "close"]].copy()
    prev = closes["close"].shift(1)
    returns = closes.assign(prev_bar_start=closes["bar_start"].shift(1), simple_return=closes["close"] / prev - 1,
                            log_return=np.log(closes["close"] / prev))  # fmt: skip
    p = {"symbol": symbol, "interval": interval, "limit": 10**9, **({"exchange": exchange} if exchange else {})}
    assert_same(run(engine, "mid_bars", **p), mid_bars, exact=("bar_start", "open", "high", "low", "close"),
                label=f"{engine.name} mid_bars")  # fmt: skip
    assert_same(run(engine, "spreads", **p), spreads, exact=("bar_start", "quotes"), label=f"{engine.name} spreads")
    assert_same(run(engine, "imbalance", **p), imbalance, label=f"{engine.name} imbalance")
    got = run(engine, "returns", **p)
    assert np.isnan(got["simple_return"].iloc[0]) and np.isnan(got["log_return"].iloc[0])
    got["prev_bar_start"] = got["prev_bar_start"].astype(float)
    assert_same(got.drop(columns=["symbol"]), returns.astype({"prev_bar_start": float}), label=f"{engine.name} returns")


def test_realized_vol_matches_the_reference(engine) -> None:
    for symbol, exchange, interval, period in (("BTCUSDT", "binance-futures", 1, 60), ("CL", "", 300, 86400)):
        _, g = _quote_bars(symbol, interval, exchange or None)
        closes = g["mid"].last()
        r = np.log(closes / closes.shift(1)).dropna()
        per = _bucket(r.index.to_numpy(), period)
        rv = pd.DataFrame({"r2": r.to_numpy() ** 2, "period_start": per}).groupby("period_start")
        want = pd.DataFrame({"returns": rv.size(), "realized_var": rv["r2"].sum()}).reset_index()
        want["realized_vol"] = np.sqrt(want["realized_var"])
        assert len(want) >= 2
        got = run(engine, "realized_vol", symbol=symbol, exchange=exchange, interval=interval, period=period,
                  limit=10**9)  # fmt: skip
        assert_same(got.drop(columns=["symbol"]), want, exact=("period_start", "returns"), label=engine.name)


def test_rolling_vwap_matches_the_reference(engine) -> None:
    t = _venue(raw("trades"), "BTCUSDT", "binance")
    t = t.sort_values(["timestamp", "received_at", "seq", "trade_id"], kind="stable")
    w = 50
    pv = (t["price"] * t["size"]).rolling(w, min_periods=1).sum()
    vol = t["size"].rolling(w, min_periods=1).sum()
    want = pd.DataFrame({"timestamp": t["timestamp"], "price": t["price"], "size": t["size"], "vwap": pv / vol,
                         "window_volume": vol}).iloc[::-1].head(500).reset_index(drop=True)  # fmt: skip
    got = run(engine, "vwap_rolling", symbol="BTCUSDT", exchange="binance", window=w, limit=500)
    assert_same(got.drop(columns=["symbol"]), want, exact=("timestamp",), label=engine.name)


def test_bars_agree_on_the_tardis_day(engine) -> None:
    # the real sample on its own: 2020-02-22 bars at 1 s, each engine and the reference
    want = ref_bars("BTCUSDT", 1, "binance-futures")
    got = run(engine, "bars", symbol="BTCUSDT", exchange="binance-futures", interval=1, until="2020-02-23",
              limit=10**9)  # fmt: skip
    assert_same(got, want.reset_index(drop=True), exact=("bar_start", "open", "close", "trades"), label=engine.name)


def test_zscore_of_the_tardis_day_from_wh_query(warehouse) -> None:
    # the CLI: without a venue the symbol is ambiguous; with one, exactly that book's quotes
    r = wh("query", "zscore", "BTCUSDT", ok=False)
    assert r.exit_code == 1 and "BTCUSDT is on 2 exchanges (binance, binance-futures)" in r.output
    for engine in ENGINES:
        z = json.loads(wh("query", "zscore", "BTCUSDT", "--exchange", "binance-futures", "--limit", "0",
                          "--engine", engine, "--format", "json").output)  # fmt: skip
        assert len(z) == 9999 and {row["symbol"] for row in z} == {"BTCUSDT"}
        assert max(row["timestamp"] for row in z) < "2020-02-23"


# ---------------------------------------------------------------- portfolio analytics


def ref_positions(at: int) -> pd.DataFrame:
    """Per (trader, exchange, symbol): position, cash flow and mark at `at` — straight from the definitions."""
    f = raw("fills")
    f = f[f["timestamp"] < at].sort_values(["timestamp", "fill_id"])
    f["signed"] = np.where(f["side"] == "buy", f["qty"], -f["qty"])
    f["cf"] = -f["signed"] * f["price"] - f["fee"]
    q = _quotes_sorted()
    q = q[q["timestamp"] < at]
    last_mid = q.groupby(["exchange", "symbol"])["mid"].last()
    rows = []
    for (trader, exchange, symbol), g in f.groupby(["trader", "exchange", "symbol"]):
        mark = last_mid.get((exchange, symbol), g["price"].iloc[-1])
        rows.append({"trader": trader, "exchange": exchange, "symbol": symbol, "asset_class": g["asset_class"].iloc[0],
                     "position": g["signed"].sum(), "cash_flow": g["cf"].sum(), "mark": mark})  # fmt: skip
    return pd.DataFrame(rows, columns=["trader", "exchange", "symbol", "asset_class", "position", "cash_flow", "mark"])


def ref_navs(at: int) -> pd.DataFrame:
    traders = raw("traders").set_index("trader")
    p = ref_positions(at)
    p["value"] = p["position"] * p["mark"]
    agg = p.groupby("trader").agg(cash_flow=("cash_flow", "sum"), positions_value=("value", "sum"))
    out = traders[["initial_cash"]].join(agg).fillna(0.0)
    out["cash"] = out["initial_cash"] + out["cash_flow"]
    out["nav"] = out["cash"] + out["positions_value"]
    out = out.reset_index().sort_values(["nav", "trader"], ascending=[False, True]).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    out["pnl"] = out["nav"] - out["initial_cash"]
    out["total_return"] = out["nav"] / out["initial_cash"] - 1
    return out


AT = START + 30 * 3600 * NS + 123  # 2024-01-03 06:00:00.000000123


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{ns % NS:09d}"[:7]


def test_leaderboard_and_rank_match_the_reference(engine) -> None:
    at = START + 30 * 3600 * NS
    want = ref_navs(at)
    assert want["nav"].nunique() == len(want) and (want["positions_value"] != 0).sum() > 20
    cols = ["rank", "trader", "nav", "cash", "positions_value", "pnl", "total_return"]
    got = run(engine, "leaderboard", at=_iso(at), limit=10)
    assert_same(got, want[cols].head(10), exact=("rank", "trader"), label=engine.name)
    everyone = run(engine, "leaderboard", at=_iso(at), limit=1000)
    assert_same(everyone, want[cols], exact=("rank", "trader"), label=engine.name)
    r = run(engine, "trader_rank", trader="T07", at=_iso(at))
    mine = want[want["trader"] == "T07"].iloc[0]
    assert int(r["rank"].iloc[0]) == int(mine["rank"]) and int(r["traders"].iloc[0]) == len(TRADERS)
    assert abs(r["nav"].iloc[0] - mine["nav"]) < 1e-9 * mine["nav"]
    assert abs(r["percentile"].iloc[0] - (len(TRADERS) - mine["rank"] + 1) / len(TRADERS)) < 1e-12
    assert run(engine, "trader_rank", trader="nobody", at=_iso(at)).empty
    # before any fill every trader holds its initial cash: ties of NAV rank by trader id
    early = run(engine, "leaderboard", at="2024-01-01 12:00:00", limit=1000)
    assert list(early["nav"]) == sorted(early["nav"], reverse=True)
    assert (early["positions_value"] == 0).all()


def test_allocation_matches_the_reference(engine) -> None:
    at = END
    p = ref_positions(at)
    p = p[(p["trader"] == "T03") & (p["position"] != 0)].copy()
    p["net"] = p["position"] * p["mark"]
    p["gross"] = p["net"].abs()
    g = p.groupby("asset_class")
    want = pd.DataFrame({"positions": g.size(), "net_exposure": g["net"].sum(), "gross_exposure": g["gross"].sum()})
    want = want.reset_index().sort_values(["gross_exposure", "asset_class"], ascending=[False, True])
    want["gross_share"] = want["gross_exposure"] / want["gross_exposure"].sum()
    nav = ref_navs(at).set_index("trader").loc["T03", "nav"]
    want["nav_share"] = want["net_exposure"] / nav
    got = run(engine, "allocation", trader="T03", at=_iso(at))
    assert_same(got, want.reset_index(drop=True), exact=("asset_class", "positions"), label=engine.name)
    assert abs(got["gross_share"].sum() - 1) < 1e-12


def ref_nav_series(trader: str, interval: int) -> pd.DataFrame:
    f = raw("fills")
    f = f[f["trader"] == trader]
    q = raw("market_ticks")
    q = q[pd.MultiIndex.from_frame(q[["exchange", "symbol"]]).isin(set(zip(f["exchange"], f["symbol"], strict=True)))]
    step = interval * NS
    ends = np.concatenate(
        [(q["timestamp"].to_numpy() // step + 1) * step, (f["timestamp"].to_numpy() // step + 1) * step]
    )
    points = np.unique(ends[ends > f["timestamp"].min()])
    navs = []
    for ts in points:
        n = ref_navs(int(ts)).set_index("trader").loc[trader]
        navs.append((int(ts), n["initial_cash"], n["cash"], n["positions_value"], n["nav"]))
    return pd.DataFrame(navs, columns=["ts", "initial_cash", "cash", "positions_value", "nav"])


def test_equity_curve_pnl_and_drawdown_match_the_reference(engine) -> None:
    trader, interval = "T06", 4 * 3600  # holds BTCUSDT on binance and on binance-futures
    s = ref_nav_series(trader, interval)
    assert len(s) >= 8
    init = s["initial_cash"].iloc[0]
    peak = np.maximum(init, s["nav"].cummax())
    curve = pd.DataFrame({"ts": s["ts"], "cash": s["cash"], "positions_value": s["positions_value"], "nav": s["nav"],
                          "pnl": s["nav"].diff().fillna(s["nav"].iloc[0] - init), "peak": peak,
                          "drawdown": s["nav"] / peak - 1})  # fmt: skip
    daily = ref_nav_series(trader, 86400)
    opens = daily["nav"].shift(1).fillna(init)
    f = raw("fills")
    f = f[f["trader"] == trader]
    fday = f.assign(day=_bucket(f["timestamp"].to_numpy(), 86400)).groupby("day")
    pnl = pd.DataFrame({"day": daily["ts"] - 86400 * NS, "nav_open": opens, "nav_close": daily["nav"],
                        "pnl": daily["nav"] - opens, "day_return": daily["nav"] / opens - 1})  # fmt: skip
    pnl["fees"] = pnl["day"].map(fday["fee"].sum()).fillna(0.0)
    pnl["fills"] = pnl["day"].map(fday.size()).fillna(0).astype(np.int64)
    dd = curve["drawdown"]
    trough = int(np.argmin(dd.to_numpy()))
    got = run(engine, "equity_curve", trader=trader, interval=interval)
    assert_same(got.drop(columns=["trader"]), curve, exact=("ts",), label=f"{engine.name} equity_curve")
    got = run(engine, "daily_pnl", trader=trader)
    got["fills"] = got["fills"].astype(np.int64)
    assert_same(got.drop(columns=["trader"]), pnl, exact=("day", "fills"), label=f"{engine.name} daily_pnl")
    got = run(engine, "drawdown", trader=trader, interval=interval)
    assert len(got) == 1 and int(got["points"].iloc[0]) == len(curve)
    assert abs(got["max_drawdown"].iloc[0] - dd.min()) < 1e-12
    assert int(got["trough_ts"].iloc[0]) == int(curve["ts"].iloc[trough])
    assert abs(got["peak_nav"].iloc[0] - peak.iloc[trough]) < 1e-9 * init
    assert abs(got["current_drawdown"].iloc[0] - dd.iloc[-1]) < 1e-12
    assert run(engine, "equity_curve", trader="nobody").empty and run(engine, "drawdown", trader="nobody").empty


def test_symbols_catalog_matches_the_reference(engine) -> None:
    q = raw("market_ticks")
    g = q.groupby(["symbol", "exchange"], sort=True)
    want = pd.DataFrame({"asset_class": g["asset_class"].min(), "quotes": g.size(), "first_ts": g["timestamp"].min(),
                         "last_ts": g["timestamp"].max()}).reset_index()  # fmt: skip
    got = run(engine, "symbols", limit=10_000)
    assert_same(got, want, exact=tuple(want.columns), label=engine.name)


def test_every_listed_query_runs_on_both_engines_with_identical_results(warehouse) -> None:
    from warehouse.sql import queries

    params = {
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "trader": "T01",
        "at": "2024-01-03 12:00:00",
        "day": "2024-01-02",
    }
    names = [q.name for q in queries.list_queries()]
    for q in queries.list_queries():
        p = {k: v for k, v in params.items() if k in {x.name for x in q.params}}
        a, b = run("duckdb", q.name, **p), run("clickhouse", q.name, **p)
        assert len(a) > 0, q.name
        assert_same(b, a, exact=tuple(c for c in a.columns if a[c].dtype.kind in "iuOM"), label=q.name)
    for required in ("zscore", "bars", "mid_bars", "vwap_rolling", "spreads", "imbalance", "realized_vol", "returns",
                     "equity_curve", "daily_pnl", "drawdown", "allocation", "leaderboard", "trader_rank"):  # fmt: skip
        assert required in names
    listing = wh("query", "--list").output
    assert all(n in listing for n in names)


def test_materialized_days_match_the_queries_and_rerun_replaces(warehouse) -> None:
    import datetime as dt

    wh("refresh")
    day = dt.date(2024, 1, 2)
    at = START + 86_400 * NS
    want_board = ref_navs(at)
    t = raw("trades")
    t = t[(t["timestamp"] >= START) & (t["timestamp"] < at)]
    for engine in ENGINES:
        eng = _engine(engine)
        try:
            # a stale row for that day: the refresh must drop it
            eng.command(
                "INSERT INTO wh.bars_1m VALUES ('2024-01-02 00:00:00', 'X', 'STALE', 'crypto', 1, 1, 1, 1, 1, 1, 1)"
            )
        finally:
            eng.close()
        for _ in range(2):
            wh("refresh", "--day", "2024-01-02", "--engine", engine)
        bars = run(engine, "daily_leaders", day=str(day), limit=1000)
        assert list(bars["trader"]) == list(want_board["trader"]) and list(bars["rank"]) == list(want_board["rank"])
        assert_same(bars[["nav", "pnl"]], want_board[["nav", "pnl"]], label=engine)
        eng = _engine(engine)
        try:
            stored = _pandas(eng.query("SELECT * FROM wh.bars_1m WHERE symbol IN ('ETHUSDT', 'STALE') "
                                       "ORDER BY bar_start"))  # fmt: skip
            n_day = eng.query(
                "SELECT count(*) AS n FROM wh.bars_1m WHERE bar_start >= '2024-01-02' AND bar_start < '2024-01-03'"
            ).column("n")[0]
        finally:
            eng.close()
        stored = stored[stored["bar_start"] < at].reset_index(drop=True)
        want = ref_bars("ETHUSDT", 60)
        want = want[(want["bar_start"] >= START) & (want["bar_start"] < at)].reset_index(drop=True)
        assert "STALE" not in set(stored["symbol"])
        assert_same(stored[list(want.columns)], want, exact=("bar_start", "open", "close", "trades"), label=engine)
        assert n_day.as_py() == len(t.groupby([_bucket(t["timestamp"].to_numpy(), 60), t["exchange"], t["symbol"]]))


# ---------------------------------------------------------------- analysts' SQL and charts


def _counts() -> dict[str, tuple[int, ...]]:
    out = {}
    for engine in ENGINES:
        eng = _engine(engine)
        try:
            out[engine] = tuple(eng.query(f"SELECT count(*) AS n FROM wh.{t}").column("n")[0].as_py()
                                for t in ("trades", "market_ticks", "fills", "traders"))  # fmt: skip
        finally:
            eng.close()
    return out


def test_sql_runs_clickhouse_dialect_on_both_engines(warehouse) -> None:
    import json

    t = raw("trades")
    t = t[t["symbol"] == "ETHUSDT"].sort_values(["timestamp", "received_at", "seq", "trade_id"])
    stmt = ("SELECT symbol, count() AS n, argMax(price, (timestamp, received_at, trade_id)) AS last_price, "
            "toFloat64(sum(size)) AS volume FROM wh.trades WHERE symbol = 'ETHUSDT' GROUP BY symbol")  # fmt: skip
    for engine in ENGINES:
        r = wh("sql", stmt, "--engine", engine, "--format", "json")
        row = json.loads(r.output)[0]
        assert row["n"] == len(t) and row["last_price"] == t["price"].iloc[-1]
        assert abs(row["volume"] - t["size"].sum()) < 1e-9 * t["size"].sum()
    # DuckDB's own dialect, on both engines too
    for engine in ENGINES:
        r = wh("sql", "SELECT count(*) AS n FROM wh.traders WHERE trader LIKE 'T0%'", "--dialect", "duckdb",
               "--engine", engine, "--format", "csv")  # fmt: skip
        assert r.output.splitlines()[1] == "10"


ATTACKS = [
    "INSERT INTO wh.fills SELECT * FROM wh.fills",
    "DELETE FROM wh.trades WHERE 1 = 1",
    "ALTER TABLE wh.trades DELETE WHERE 1 = 1",
    "DROP TABLE wh.fills",
    "TRUNCATE TABLE wh.trades",
    "CREATE TABLE wh.x (a Int64) ENGINE = Memory",
    "SELECT 1; DROP TABLE wh.fills",
    "SELECT count() FROM wh.trades; SELECT 1",
    "SET readonly = 0",
    "SET max_result_rows = 0",
    "SELECT * FROM wh.trades SETTINGS readonly = 0",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k.csv')",
    "SELECT * FROM numbers(10)",
    "SELECT (SELECT count() FROM file('/etc/passwd', 'LineAsString')) AS n",
    "SELECT * FROM wh.trades AS t JOIN url('http://127.0.0.1:9/x', 'CSV', 'a String') AS u ON 1 = 1",
    "SELECT * FROM system.tables",
    "SELECT file('/etc/hostname') AS secret",
    "SELECT count() FROM wh.trades WHERE symbol = file('/etc/hostname')",
    "SELECT dictGet('some_dict', 'attr', toUInt64(1))",
    "SELECT * FROM wh.trades INTO OUTFILE '/tmp/wh_sql_outfile.csv'",
    "SYSTEM DROP MARK CACHE",
    "KILL QUERY WHERE 1 = 1",
    "OPTIMIZE TABLE wh.trades FINAL",
]
DUCKDB_ATTACKS = [
    "COPY wh.trades TO '/tmp/wh_sql_copy.csv'",
    "ATTACH '/tmp/wh_sql_other.duckdb' AS other",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "PRAGMA database_list",
    "INSTALL httpfs",
    "CALL duckdb_settings()",
    "SELECT * INTO wh.copy FROM wh.trades",
    "EXPORT DATABASE '/tmp/wh_sql_export'",
]


def test_sql_refuses_writes_escalation_and_table_functions(warehouse) -> None:
    before = _counts()
    for engine in ENGINES:
        for stmt in ATTACKS:
            r = wh("sql", stmt, "--engine", engine, ok=False)
            assert r.exit_code == 1 and "Error:" in r.output, (engine, stmt, r.output)
        for stmt in DUCKDB_ATTACKS:
            r = wh("sql", stmt, "--dialect", "duckdb", "--engine", engine, ok=False)
            assert r.exit_code == 1 and "Error:" in r.output, (engine, stmt, r.output)
        r = wh("sql", "SELECT * FROM wh.trades", "--engine", engine, "--max-rows", "100", ok=False)
        assert r.exit_code == 1 and "more than 100 rows" in r.output
        r = wh("sql", "SELECT count() FROM wh.market_ticks AS a, wh.market_ticks AS b, wh.market_ticks AS c",
               "--engine", engine, "--timeout", "1", ok=False)  # fmt: skip
        assert r.exit_code == 1 and "longer than 1 s" in r.output
    assert _counts() == before
    for leftover in (
        "/tmp/wh_sql_outfile.csv",
        "/tmp/wh_sql_copy.csv",
        "/tmp/wh_sql_other.duckdb",
        "/tmp/wh_sql_export",
    ):
        assert not Path(leftover).exists()


def test_sql_connections_are_read_only_even_without_the_parser(warehouse) -> None:
    """The second barrier: statements the parser would refuse, sent straight to the engines."""
    from warehouse.config import get_settings
    from warehouse.errors import QueryError
    from warehouse.sql import readonly

    s = get_settings()
    before = _counts()
    for stmt in ("INSERT INTO wh.traders SELECT * FROM wh.traders", "SELECT * FROM read_csv('/etc/passwd')",
                 "COPY wh.trades TO '/tmp/wh_sql_copy2.csv'", "SET enable_external_access = true"):  # fmt: skip
        with pytest.raises(QueryError):
            readonly._run_duckdb(stmt, s, 10)
    for stmt in ("INSERT INTO wh.traders SELECT * FROM wh.traders",
                 "SELECT * FROM file('/etc/passwd', 'LineAsString')"):  # fmt: skip
        with pytest.raises(QueryError, match=r"READONLY|readonly"):
            readonly._run_clickhouse(stmt, s, 10, 100)
    assert _counts() == before and not Path("/tmp/wh_sql_copy2.csv").exists()
    # the embedded ClickHouse session is not left read-only for the rest of the process
    eng = _engine("clickhouse")
    try:
        eng.command("CREATE TABLE IF NOT EXISTS wh.scratch (a Int64) ENGINE = Memory")
        eng.command("DROP TABLE wh.scratch")
    finally:
        eng.close()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_plots_write_pngs_with_axes_labels_and_bands(warehouse, tmp_path) -> None:
    from matplotlib.collections import PolyCollection

    from warehouse.analytics import charts

    r = wh("plot", "zscore", "BTCUSDT", ok=False)  # two venues: which book?
    assert r.exit_code == 1 and "binance, binance-futures" in r.output and "--exchange" in r.output
    for args, name in ((["zscore", "BTCUSDT", "--exchange", "binance", "--limit", "3000"], "zscore_binance_BTCUSDT.png"),
                       (["equity", "T05", "--interval", "1800", "--engine", "clickhouse"], "equity_T05.png")):  # fmt: skip
        r = wh("plot", *args)
        path = Path(r.output.strip().splitlines()[-1])
        assert path.name == name and path.is_file()
        w, h = _png_size(path)
        assert (w, h) == (1320, 770) and path.stat().st_size > 20_000
    out = tmp_path / "z.png"
    assert wh("plot", "zscore", "ETHUSDT", "--out", str(out)).output.strip().endswith("z.png") and out.is_file()
    assert wh("plot", "equity", "nobody", ok=False).exit_code == 1

    eng = _engine("duckdb")
    try:
        from warehouse import analytics

        z = analytics.zscore(eng, "BTCUSDT", window=60, limit=500, exchange="binance")
        eq = analytics.run(eng, "equity_curve", trader="T05", interval=1800)
    finally:
        eng.close()
    fig = charts.zscore_figure(z, symbol="BTCUSDT", window=60)
    top, bottom = fig.axes
    assert top.get_ylabel() == "price" and bottom.get_ylabel() == "z-score (σ)" and "UTC" in bottom.get_xlabel()
    band = [c for c in top.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1 and band[0].get_label() == "mean ± 2σ"
    ys = band[0].get_paths()[0].vertices[:, 1]
    mean, std = z.column("rolling_mean").to_numpy(), z.column("rolling_std").to_numpy()
    assert abs(ys.max() - (mean + 2 * std).max()) < 1e-6 and abs(ys.min() - (mean - 2 * std).min()) < 1e-6
    assert sorted(round(line.get_ydata()[0], 6) for line in bottom.lines[1:]) == [-2, 0, 2]
    fig = charts.equity_figure(eq, trader="T05")
    top, bottom = fig.axes
    assert "NAV" in top.get_ylabel() and bottom.get_ylabel() == "drawdown (%)"
    assert [ln.get_label() for ln in top.lines] == ["NAV", "running peak"]
    assert np.allclose(top.lines[0].get_ydata(), eq.column("nav").to_numpy())
    assert np.allclose(bottom.lines[0].get_ydata(), eq.column("drawdown").to_numpy() * 100)
