"""The stored z-score (issue 15): after any sequence of imports, ingests with late ticks,
restarts and crashes, wh.quote_zscores equals queries/zscore.sql on the final table
(zscore_check.py). The Kafka kill -9 runs check the same invariant (test_kafka.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from zscore_check import assert_stored_zscores_match

pytestmark = [pytest.mark.integration]

_T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC, ns


def _sinks(home: Path) -> list[Any]:
    from warehouse.config import Settings
    from warehouse.sinks.clickhouse import ClickHouseSink
    from warehouse.sinks.duckdb import DuckDBSink

    settings = Settings(home=home)
    return [DuckDBSink(settings), ClickHouseSink(settings)]


def _quotes(rng: random.Random, n: int, lo_s: float, hi_s: float, instruments: list[str],
            used: set[tuple]) -> pa.Table:  # fmt: skip
    """`n` quotes at random times in [lo_s, hi_s) s after _T0: bids from a few levels a cent
    apart, near 100 or (BTC) 97,000 (flat windows, equal prices, a std 10⁻⁷ of the price), half without seq, some sharing event and receipt time (ties broken
    by the quote's values); no two share a dedup key (the sanitizer's guarantee)."""
    from warehouse.records import SCHEMAS

    rows = []
    while len(rows) < n:
        symbol = rng.choice(instruments)
        ts = _T0 + int(rng.uniform(lo_s, hi_s) * 1e9) // 1_000_000 * 1_000_000  # ms: ties happen
        received = ts + rng.choice((0, 0, 1_000, 5_000_000))
        seq = rng.randrange(1, 10**9) if rng.random() < 0.5 else None
        level = rng.choice((0, 0, 0, 1, 2, 3)) if symbol != "FLAT" else 0
        base = 97_000.0 if symbol == "BTC" else 100.0  # BTC-like: a std of cents next to 97,000
        bid = round(base + level * 0.01, 2)
        ask = bid + rng.choice((0.01, 0.02))
        size = rng.choice((1.0, 2.0, None))
        key = (symbol, ts, seq if seq is not None else received, *((bid, ask, size) if seq is None else ()))
        if key in used:
            continue
        used.add(key)
        rows.append({"timestamp": ts, "received_at": received, "exchange": "x", "symbol": symbol,
                     "asset_class": "crypto", "bid": bid, "ask": ask, "bid_size": size, "ask_size": 1.0,
                     "seq": seq})  # fmt: skip
    rng.shuffle(rows)
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    schema = SCHEMAS["market_ticks"]
    return pa.table({f.name: pa.array(cols[f.name], pa.int64()).cast(f.type) if f.type == pa.timestamp("ns", "UTC")
                     else pa.array(cols[f.name], f.type) for f in schema}, schema=schema)  # fmt: skip


@pytest.mark.parametrize(
    "seed",
    [
        1,
        pytest.param(2, marks=pytest.mark.slow),
        pytest.param(3, marks=pytest.mark.slow),
        pytest.param(4, marks=pytest.mark.slow),
    ],
)
def test_stored_zscores_survive_late_ticks_restarts_and_crashes(tmp_path: Path, seed: int) -> None:
    """Random batches on both engines: in order, late ticks inside the ring and far behind it
    (an older day), restarts (rings start cold), a second writer between batches (the ring is
    no longer current), the same batch again, and on ClickHouse a crash between the quotes'
    insert and their z-scores'. The invariant holds after every step."""
    rng = random.Random(seed)
    home = tmp_path / "wh"
    sinks = _sinks(home)
    instruments = ["AAA", "BBB", "FLAT", "BTC"]
    used: set[tuple] = set()
    newest = 0.0
    checked = 0
    last: pa.Table | None = None
    for step in range(14):
        action = rng.choice(("next", "next", "late", "old", "restart", "other", "again", "crash"))
        if action == "restart" or action == "other":
            for s in sinks:
                s.close()
            sinks = _sinks(home)
            if action == "restart":
                continue
            other = _sinks(home)  # a second writer: the first one's rings no longer hold
            batch = _quotes(rng, 40, newest, newest + 5, instruments, used)
            newest += 5
            for s in other:
                s.write({"market_ticks": batch})
                s.close()
        elif action == "again" and last is not None:
            for s in sinks:
                counts = s.write({"market_ticks": last})
                assert counts.stored.get("market_ticks", 0) == 0
        elif action == "crash":
            batch = _quotes(rng, 60, newest, newest + 10, instruments, used)
            newest += 10
            ch = sinks[1]
            ch.engine.insert("wh.market_ticks", batch)  # the quotes landed, the process died
            for s in sinks:
                s.write({"market_ticks": batch})  # the retry
            last = batch
        else:
            if action == "next":
                lo, hi = newest, newest + 20
            elif action == "late":  # inside the newest few seconds: the ring covers most
                lo, hi = max(0.0, newest - 3), newest + 10
            else:  # older than anything stored
                lo, hi = -100.0 - 20 * step, -80.0 - 20 * step
            batch = _quotes(rng, rng.randint(30, 150), lo, hi, instruments, used)
            newest = max(newest, hi)
            for s in sinks:
                s.write({"market_ticks": batch})
            last = batch
        for s in sinks:
            checked += assert_stored_zscores_match(s.engine)
    assert checked > 0
    for s in sinks:
        s.close()


@pytest.mark.slow
def test_imports_in_any_order_keep_the_stored_zscores(tmp_path: Path) -> None:
    """`wh import` of a later day, then the day before (its quotes go in front of the stored
    ones: the first 59 quotes of the later day get new windows), then the later day again."""
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.pipeline import run_import

    sinks = _sinks(tmp_path / "wh")
    day2 = SyntheticFeed(ticks=12_000, seed=3, instruments=4, start=datetime(2024, 1, 3, tzinfo=UTC), chunk=4_000)
    day1 = SyntheticFeed(ticks=12_000, seed=4, instruments=4, start=datetime(2024, 1, 2, tzinfo=UTC), chunk=3_000)
    run_import(day2.batches(), source=day2.source, sinks=sinks)
    run_import(day1.batches(), source=day1.source, sinks=sinks)
    for s in sinks:
        s.close()
    sinks = _sinks(tmp_path / "wh")  # a new process: cold rings, everything already stored
    run_import(day2.batches(), source=day2.source, sinks=sinks)
    for s in sinks:
        assert assert_stored_zscores_match(s.engine) > 15_000
        _kernel_windows_match_the_sql(s.engine)
        s.close()


def _kernel_windows_match_the_sql(engine: Any) -> None:
    """`wh query zscore --window N` (N ≠ 60: the O(1) kernel over the newest limit + N − 1 bids)
    gives queries/zscore.sql's rows; the stored window gives them too."""
    import warehouse.analytics as analytics
    from warehouse.sql import queries

    top = engine.query(
        "SELECT exchange, symbol, count(*) AS n FROM wh.market_ticks GROUP BY exchange, symbol ORDER BY n DESC LIMIT 1"
    ).to_pylist()[0]
    exchange, symbol = top["exchange"], top["symbol"]
    for window, limit in ((1, 50), (7, 100), (60, 100), (200, 100), (200, None), (60, None), (5000, 10)):
        mine = analytics.zscore(engine, symbol, exchange=exchange, window=window, limit=limit)
        ref = queries.load("zscore").run(engine, {"symbol": symbol, "exchange": exchange, "window": window,
                                                  "limit": limit or 2**62})  # fmt: skip
        assert mine.num_rows == ref.num_rows > 0, (window, limit)
        assert mine.column("timestamp").to_pylist() == ref.column("timestamp").to_pylist(), (window, limit)
        assert mine.column("bid").to_pylist() == ref.column("bid").to_pylist(), (window, limit)
        for a, b in zip(mine.column("z_score").to_pylist(), ref.column("z_score").to_pylist(), strict=True):
            assert (a is None) == (b is None) and (a is None or abs(a - b) <= 1e-8), (window, limit, a, b)
        for column in ("rolling_mean", "rolling_std"):
            for a, b in zip(mine.column(column).to_pylist(), ref.column(column).to_pylist(), strict=True):
                assert abs(a - b) <= 1e-8 * max(1.0, abs(b)), (window, limit, column, a, b)
