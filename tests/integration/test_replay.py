"""Replay out of both engines and the simulator end to end: order, determinism, memory, ledger."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from warehouse.cli.main import app
from warehouse.records import QUOTE_SCHEMA, TRADE_SCHEMA

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
ENGINES = ("duckdb", "clickhouse")
NS = 1_000_000_000
runner = CliRunner()
DAY = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp()) * NS


def wh(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def _engine(name: str, read_only: bool = False):
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    return open_engine(name, get_settings(), read_only=read_only)


def _crafted(n: int = 6000, seed: int = 3) -> tuple[pa.Table, pa.Table]:
    """Quotes and trades of 4 symbols over 3 days, many sharing timestamps, some across hour edges."""
    rng = np.random.default_rng(seed)
    syms = np.array(["AAA", "BBB", "CCC", "DDD"])
    slots = DAY + np.sort(rng.integers(0, 3 * 86_400, 400)) * NS + rng.integers(0, 3, 400) * 1000
    slots[::17] = (slots[::17] // (3600 * NS) + 1) * 3600 * NS - 1  # right before an hour edge
    ts = rng.choice(slots, n)
    recv = ts + rng.integers(0, 2_000_000, n)  # receipt 0–2 ms after the event
    recv[::50] = ts[::50] + 500_000_000  # a few arrive 0.5 s late
    sym = rng.choice(syms, n)
    is_trade = rng.random(n) < 0.3
    ts_type = pa.timestamp("ns", tz="UTC")

    def col(x: np.ndarray) -> pa.Array:
        return pa.array(x, pa.int64()).cast(ts_type)

    q, t = ~is_trade, is_trade
    mid = 100 + rng.normal(0, 1, n)
    quotes = pa.table({
        "timestamp": col(ts[q]), "received_at": col(recv[q]), "exchange": ["X"] * int(q.sum()), "symbol": sym[q],
        "asset_class": ["crypto"] * int(q.sum()), "bid": mid[q] - 0.01, "ask": mid[q] + 0.01,
        "bid_size": rng.integers(1, 5, int(q.sum())).astype(float), "ask_size": rng.integers(1, 5, int(q.sum())).astype(float),
        "seq": pa.array(np.arange(int(q.sum())), pa.int64()),
    }).cast(QUOTE_SCHEMA)  # fmt: skip
    trades = pa.table({
        "timestamp": col(ts[t]), "received_at": col(recv[t]), "exchange": ["X"] * int(t.sum()), "symbol": sym[t],
        "asset_class": ["crypto"] * int(t.sum()), "trade_id": [f"t{i:05d}" for i in range(int(t.sum()))],
        "side": rng.choice(["buy", "sell"], int(t.sum())), "price": mid[t], "size": rng.uniform(0.1, 2, int(t.sum())),
        "seq": pa.array([None] * int(t.sum()), pa.int64()),
    }).cast(TRADE_SCHEMA)  # fmt: skip
    return quotes, trades


def _store(quotes: pa.Table, trades: pa.Table) -> None:
    from warehouse.sql.migrate import migrate

    for name in ENGINES:
        eng = _engine(name)
        try:
            migrate(eng)
            eng.insert("wh.market_ticks", quotes)
            eng.insert("wh.trades", trades)
        finally:
            eng.close()


def _reference(quotes: pa.Table, trades: pa.Table, clock: str) -> pd.DataFrame:
    q = quotes.to_pandas(types_mapper=None)
    t = trades.to_pandas()
    rows = []
    for df, kind in ((q, 0), (t, 1)):
        d = pd.DataFrame({
            "timestamp": df["timestamp"].astype("int64"), "received_at": df["received_at"].astype("int64"),
            "seq": df["seq"].fillna(-1).astype("int64"), "kind": kind, "exchange": df["exchange"],
            "symbol": df["symbol"], "trade_id": df.get("trade_id"), "bid": df.get("bid"), "ask": df.get("ask"),
            "bid_size": df.get("bid_size"), "ask_size": df.get("ask_size"), "price": df.get("price"),
            "size": df.get("size"), "side": df.get("side"),
        })  # fmt: skip
        rows.append(d)
    ref = pd.concat(rows, ignore_index=True)
    lead = ["timestamp", "received_at"] if clock == "event" else ["received_at", "timestamp"]
    keys = [*lead, "seq", "kind", "exchange", "symbol", "trade_id", "bid", "ask", "bid_size", "ask_size", "price",
            "size", "side"]  # fmt: skip
    return ref.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def _replayed(engine: str, clock: str, **kw) -> pl.DataFrame:
    from warehouse.replay import replay

    eng = _engine(engine, read_only=True)
    try:
        return pl.concat(list(replay(eng, ["AAA", "BBB", "CCC", "DDD"], datetime(2024, 3, 1, tzinfo=UTC),
                                     datetime(2024, 3, 9, tzinfo=UTC), clock=clock, **kw)))  # fmt: skip
    finally:
        eng.close()


def test_replay_is_in_strict_clock_order_across_symbols_and_identical_on_both_engines(home) -> None:
    quotes, trades = _crafted()
    _store(quotes, trades)
    for clock in ("event", "receipt"):
        ref = _reference(quotes, trades, clock)
        assert ref.duplicated(["timestamp"]).sum() > 1000  # plenty of equal timestamps across symbols and kinds
        got = {e: _replayed(e, clock, batch_rows=777, slice_rows=400) for e in ENGINES}
        assert got["duckdb"].equals(got["clickhouse"]), clock
        g = got["duckdb"]
        assert g.height == len(ref)
        for c in ("timestamp", "received_at", "seq", "kind", "symbol"):
            assert g[c].to_list() == ref[c].tolist(), (clock, c)
        lead = g["timestamp" if clock == "event" else "received_at"].to_numpy()
        assert (np.diff(lead) >= 0).all()


def test_receipt_clock_refuses_ticks_received_long_before_their_event(home) -> None:
    from warehouse.replay import ReplayOrderError

    quotes, trades = _crafted(n=500)
    ts = quotes.column("timestamp").cast(pa.int64()).to_numpy().copy()
    recv = ts.copy()
    recv[-1] = ts[0] - 10 * NS  # the latest event says it was received before the first: 1 s skew is the limit
    quotes = quotes.set_column(1, "received_at", pa.array(recv, pa.int64()).cast(pa.timestamp("ns", tz="UTC")))
    _store(quotes, trades)
    with pytest.raises(ReplayOrderError, match="max_skew"):
        _replayed("duckdb", "receipt", slice_rows=50)  # small slices: the early receipt is in a later slice
    whole = _replayed("duckdb", "receipt")  # one slice holds everything: sorted, no violation possible
    assert (np.diff(whole["received_at"].to_numpy()) >= 0).all()
    assert _replayed("duckdb", "event", slice_rows=50).height == quotes.num_rows + trades.num_rows


def test_speed_multiple_paces_the_replay(home) -> None:
    from warehouse.replay import replay

    quotes, trades = _crafted(n=300)
    ticks = quotes.slice(0, 9)
    stamps = pa.array([DAY + k * 250_000_000 for k in range(9)], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    ticks = ticks.set_column(0, "timestamp", stamps).set_column(1, "received_at", stamps)
    _store(ticks, trades.slice(0, 0))  # 9 quotes over 2 s of history
    eng = _engine("duckdb", read_only=True)
    try:
        start = time.monotonic()
        seen = []
        for b in replay(eng, ["AAA", "BBB", "CCC", "DDD"], datetime(2024, 3, 4, tzinfo=UTC),
                        datetime(2024, 3, 5, tzinfo=UTC), speed=4.0):  # fmt: skip
            seen += [(time.monotonic() - start, ts) for ts in b["timestamp"].to_list()]
    finally:
        eng.close()
    assert len(seen) == 9
    for wall, ts in seen:  # each tick is released no earlier than its due time at 4× real time
        assert wall >= (ts - DAY) / NS / 4.0 - 0.005, (wall, ts)
    assert seen[-1][0] >= 0.49


def _rss_after_replay(home: Path, until: str) -> float:
    code = (
        "import sys; from datetime import datetime, UTC\n"
        "from warehouse.config import get_settings; from warehouse.sql.engines import open_engine\n"
        "from warehouse.sim.run import simulate; from warehouse.sim.strategies import NoOp\n"
        "eng = open_engine('duckdb', get_settings(), read_only=True, for_replay=True)\n"
        "r = simulate(eng, [('n', NoOp())], ['CRY001','BTCUSDT','ETHUSDT','EURUSD','AAPL','CL'],"
        " datetime(2024,1,1,tzinfo=UTC), datetime.fromisoformat(sys.argv[1]).replace(tzinfo=UTC))\n"
        # VmHWM: ru_maxrss survives exec and would report pytest's own peak
        "print(r.stats.ticks, next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:')) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, until], capture_output=True, text=True, check=True,
                         env={"WH_HOME": str(home), "PATH": "/usr/bin:/bin"})  # fmt: skip
    ticks, rss = out.stdout.split()
    return int(ticks), float(rss)


def test_memory_stays_flat_over_a_long_range(home) -> None:
    wh("generate", "--instruments", "40", "--ticks", "600000", "--days", "30", "--engine", "duckdb")
    short_ticks, short_rss = _rss_after_replay(home, "2024-01-05")
    long_ticks, long_rss = _rss_after_replay(home, "2024-02-02")
    assert long_ticks > 8 * short_ticks
    print(f"replay RSS: {short_ticks:,} ticks {short_rss:.0f} MB, {long_ticks:,} ticks {long_rss:.0f} MB")
    assert long_rss - short_rss < 100, (short_rss, long_rss)


def test_wh_replay_on_the_tardis_samples_is_deterministic_across_engines(home, tardis, tmp_path) -> None:
    quotes, trades = tardis
    wh("import", str(quotes), str(trades))
    outs = []
    for i, engine in enumerate(("duckdb", "clickhouse", "duckdb")):
        path = tmp_path / f"fills{i}.parquet"
        r = wh("replay", "--strategy", "zscore", "--sweep", "window=30,120", "--params", "entry=1.5",
               "--params", "notional=20000", "--symbols", "BTCUSDT", "--from", "2020-02-22", "--to", "2020-02-23",
               "--engine", engine, "--fills-out", str(path), "--snapshot-every", "60")  # fmt: skip
        assert "replayed 19,998 ticks" in r.output
        outs.append(path.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    fills = pl.read_parquet(tmp_path / "fills0.parquet")
    assert fills.height > 50 and set(fills["trader"]) == {"zscore-1", "zscore-2"}
    r = wh("replay", "--strategy", "twap", "--params", "symbol=BTCUSDT", "--params", "total_qty=3",
           "--params", "slices=6", "--params", "duration=120", "--symbols", "BTCUSDT",
           "--from", "2020-02-22", "--to", "2020-02-23", "--engine", "clickhouse")  # fmt: skip
    assert "twap" in r.output
    for engine in ENGINES:
        board = json.loads(wh("query", "leaderboard", "--engine", engine, "--format", "json").output)
        assert {r["trader"] for r in board} == {"zscore-1", "zscore-2", "twap"}
        twap = json.loads(wh("sql", "SELECT count() AS n, sum(qty) AS q FROM wh.orders WHERE trader = 'twap'",
                             "--engine", engine, "--format", "json").output)[0]  # fmt: skip
        assert twap["n"] == 6 and abs(twap["q"] - 3.0) < 1e-12
        curve = json.loads(wh("query", "equity_curve", "zscore-1", "--interval", "10", "--engine", engine,
                              "--format", "json").output)  # fmt: skip
        assert len(curve) > 10


def test_synthetic_week_simulation_matches_the_warehouse_nav(home) -> None:
    from warehouse.sql import queries

    wh("generate", "--instruments", "165", "--ticks", "150000", "--days", "7", "--seed", "4")
    syms = "BTCUSDT,ETHUSDT,AAPL,MSFT,EURUSD,USDJPY,CL,GC,SPY,QQQ,SPX"
    r = wh("replay", "--strategy", "zscore", "--sweep", "window=40,80", "--params", "notional=30000",
           "--symbols", syms, "--from", "2024-01-02", "--to", "2024-01-09", "--snapshot-every", "21600")  # fmt: skip
    assert "ledger written to duckdb, clickhouse" in r.output
    wh("replay", "--strategy", "twap", "--params", "symbol=ETHUSDT", "--params", "total_qty=20",
       "--params", "slices=12", "--params", "duration=43200", "--symbols", "ETHUSDT",
       "--from", "2024-01-02", "--to", "2024-01-09", "--trader", "twap-eth")  # fmt: skip
    for engine in ENGINES:
        eng = _engine(engine, read_only=True)
        try:
            snaps = eng.query("SELECT trader, timestamp, nav FROM wh.portfolio_snapshots ORDER BY trader, timestamp")
            fills = eng.query("SELECT asset_class, count(*) AS n FROM wh.fills GROUP BY asset_class").to_pylist()
            board = queries.load("leaderboard").run(eng, {"limit": 10})
            for row in snaps.to_pylist()[::7]:
                rank = queries.load("trader_rank").run(eng, {"trader": row["trader"], "at": row["timestamp"]})
                assert abs(rank.column("nav")[0].as_py() - row["nav"]) < 1e-9 * row["nav"], row
        finally:
            eng.close()
        assert len(fills) >= 3  # several asset classes traded
        assert set(board.column("trader").to_pylist()) == {"zscore-1", "zscore-2", "twap-eth"}


def test_a_symbol_on_two_venues_is_replayed_from_the_one_asked_for_and_marked_there(home, tardis) -> None:
    """BTCUSDT on binance-futures (the Tardis day) and a copy on 'binance' 10 % higher, same times:
    two books. The simulator refuses to mix them, takes --exchange, and the ledger's NAV is
    marked with that venue's quotes (the other venue's would be 10 % off)."""
    import pyarrow.compute as pc

    from warehouse import analytics

    quotes, trades = tardis
    wh("import", str(quotes), str(trades))
    for name in ENGINES:
        eng = _engine(name)
        try:
            for table in ("market_ticks", "trades"):
                rows = eng.query(f"SELECT * FROM wh.{table}")
                rows = rows.set_column(rows.schema.get_field_index("exchange"), "exchange",
                                       pa.array(["binance"] * rows.num_rows, pa.string()))  # fmt: skip
                for col in ("bid", "ask", "price"):
                    if col in rows.column_names:
                        i = rows.schema.get_field_index(col)
                        rows = rows.set_column(i, col, pc.multiply(rows.column(i), 1.1))
                eng.insert(f"wh.{table}", rows.cast(QUOTE_SCHEMA if table == "market_ticks" else TRADE_SCHEMA))
        finally:
            eng.close()
    args = ("replay", "--strategy", "zscore", "--params", "notional=20000", "--symbols", "BTCUSDT",
            "--from", "2020-02-22", "--to", "2020-02-23", "--snapshot-every", "30")  # fmt: skip
    r = wh(*args, ok=False)
    assert r.exit_code == 1
    assert "Error:" in r.output and "BTCUSDT has ticks from binance, binance-futures" in r.output
    assert "--exchange" in r.output
    r = wh(*args, "--exchange", "binance-futures")
    assert "replayed 19,998 ticks" in r.output
    for engine in ENGINES:
        eng = _engine(engine, read_only=True)
        try:
            venues = eng.query("SELECT DISTINCT exchange FROM wh.fills UNION DISTINCT SELECT DISTINCT exchange "
                               "FROM wh.orders").column("exchange").to_pylist()  # fmt: skip
            snaps = eng.query("SELECT timestamp, nav, positions_value FROM wh.portfolio_snapshots "
                              "ORDER BY timestamp").to_pylist()  # fmt: skip
            assert sum(1 for s in snaps if abs(s["positions_value"]) > 1000) >= 3  # it held positions
            for s in snaps:
                rank = analytics.run(eng, "trader_rank", trader="zscore", at=s["timestamp"]).to_pylist()[0]
                assert abs(rank["nav"] - s["nav"]) < 1e-9 * s["nav"], (engine, s, rank)
        finally:
            eng.close()
        assert venues == ["binance-futures"]
