"""The instrument catalog (wh.instruments) on both engines: it equals what the tick tables hold
after any mix of imports, duplicates and re-runs; ClickHouse does not count a retried block
again; an asset resolves to its instrument (`wh query zscore BTC`) or to a clear choice."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pytest

pytestmark = [pytest.mark.integration]
WH = [sys.executable, "-m", "warehouse.cli.main"]
TRUTH = """
SELECT exchange, symbol, min(first_ts) AS first_ts, max(last_ts) AS last_ts, min(fq) AS first_quote_ts,
       max(lq) AS last_quote_ts, CAST(sum(quotes) AS BIGINT) AS quotes, CAST(sum(trades) AS BIGINT) AS trades
FROM (
    SELECT exchange, symbol, min(timestamp) AS first_ts, max(timestamp) AS last_ts, min(timestamp) AS fq,
           max(timestamp) AS lq, count(*) AS quotes, 0 AS trades
    FROM wh.market_ticks GROUP BY exchange, symbol
    UNION ALL
    SELECT exchange, symbol, min(timestamp), max(timestamp), NULL, NULL, 0, count(*) FROM wh.trades GROUP BY exchange, symbol
) GROUP BY exchange, symbol ORDER BY exchange, symbol"""


def wh(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*WH, *args], capture_output=True, text=True, timeout=600)
    if ok:
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    return r


def _rows(engine: str, sql: str | None) -> list[dict]:
    from warehouse.config import get_settings
    from warehouse.sql import queries
    from warehouse.sql.engines import close_embedded, open_engine

    with open_engine(engine, get_settings(), read_only=True) as eng:
        table = queries.load("instruments").run(eng, {}) if sql is None else eng.query(sql)
    close_embedded()  # the next `wh` process opens the embedded ClickHouse itself
    keys = ("exchange", "symbol", "first_ts", "last_ts", "first_quote_ts", "last_quote_ts", "quotes", "trades")
    return [{k: (v.replace(tzinfo=None) if k.endswith("_ts") and v is not None else v) for k, v in r.items() if k in keys}
            for r in table.to_pylist()]  # fmt: skip


def catalog(engine: str) -> list[dict]:
    return _rows(engine, None)


def truth(engine: str) -> list[dict]:
    return _rows(engine, TRUTH)


@pytest.mark.clickhouse
def test_the_catalog_equals_the_tick_tables_after_imports_duplicates_and_reruns(home: Path, tardis,
                                                                                 tmp_path: Path) -> None:  # fmt: skip
    feed = tmp_path / "feed"
    wh("generate", "--ticks", "20000", "--instruments", "30", "--seed", "9", "--bad-rate", "0.02",
       "--dup-rate", "0.02", "--ooo-rate", "0.01", "--out", str(feed))  # fmt: skip
    files = [str(feed / "quotes.parquet"), str(feed / "trades.parquet")]
    wh("import", *files, "--format", "parquet")
    wh("import", *map(str, tardis))
    for engine in ("duckdb", "clickhouse"):
        first = catalog(engine)
        assert first == truth(engine) and len(first) == 31, engine
    wh("import", *files, "--format", "parquet")  # nothing new: the catalog must not move
    wh("import", *map(str, tardis))
    for engine in ("duckdb", "clickhouse"):
        assert catalog(engine) == truth(engine), engine
        btc = [r for r in catalog(engine) if r["symbol"] == "BTCUSDT" and r["exchange"] == "binance-futures"]
        assert btc and btc[0]["quotes"] == 9_999 and btc[0]["trades"] == 9_999


@pytest.mark.clickhouse
def test_clickhouse_does_not_count_a_retried_block_again(home: Path) -> None:
    """The consumer's retry: the same block with the same insert_deduplication_token. The
    block is dropped, and so is its summary in the materialized views."""
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sql.engines import close_embedded, open_engine
    from warehouse.sql.migrate import migrate

    n = 1_000
    ts = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(n)]
    batch = pa.table({
        "timestamp": ts, "received_at": ts, "exchange": ["x"] * n, "symbol": [f"S{i % 3}USDT" for i in range(n)],
        "asset_class": ["crypto"] * n, "bid": [100.0 + i for i in range(n)], "ask": [100.5 + i for i in range(n)],
        "bid_size": [1.0] * n, "ask_size": [1.0] * n, "seq": pa.array([None] * n, pa.int64()),
    }).cast(QUOTE_SCHEMA)  # fmt: skip
    with open_engine("clickhouse", get_settings()) as eng:
        migrate(eng)
        for _ in range(3):
            eng.insert("wh.market_ticks", batch, dedup_token="the-same-batch")
    close_embedded()
    assert catalog("clickhouse") == truth("clickhouse")
    assert sum(r["quotes"] for r in catalog("clickhouse")) == n


@pytest.mark.clickhouse
def test_an_asset_names_its_instrument_on_both_engines(home: Path, tardis) -> None:
    wh("import", *map(str, tardis))
    for engine in ("duckdb", "clickhouse"):
        by_asset = wh("query", "zscore", "BTC", "--engine", engine, "--format", "json", "--limit", "50").stdout
        by_symbol = wh("query", "zscore", "BTCUSDT", "--engine", engine, "--format", "json", "--limit", "50").stdout
        assert json.loads(by_asset) == json.loads(by_symbol) and len(json.loads(by_asset)) == 50
        assert json.loads(wh("query", "bars", "xbt", "--engine", engine, "--format", "json").stdout)  # BitMEX's name
    r = wh("query", "zscore", "DOGE", ok=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: unknown symbol 'DOGE'"), r.stderr


def test_several_instruments_of_one_asset_are_listed_or_settled_by_the_preferred_quote(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sinks.duckdb import DuckDBSink

    rows = [("binance", "BTCUSDT"), ("coinbase", "BTC-USD"), ("kraken", "XBT/EUR"), ("binance", "ETHBTC")]
    ts = [1_700_000_000_000_000_000 + i * 1_000_000_000 for i in range(80)]
    batch = pa.table({
        "timestamp": ts, "received_at": ts, "exchange": [rows[i % 4][0] for i in range(80)],
        "symbol": [rows[i % 4][1] for i in range(80)], "asset_class": ["crypto"] * 80,
        "bid": [100.0 + (i % 7) for i in range(80)], "ask": [101.0 + (i % 7) for i in range(80)],
        "bid_size": [1.0] * 80, "ask_size": [1.0] * 80, "seq": pa.array([None] * 80, pa.int64()),
    }).cast(QUOTE_SCHEMA)  # fmt: skip
    with DuckDBSink(get_settings()) as sink:
        sink.write({"market_ticks": batch})
    r = wh("query", "zscore", "BTC", "--window", "5", ok=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: BTC names 3 instruments: BTCUSDT on binance, "
                                                     "BTC-USD on coinbase, XBT/EUR on kraken"), r.stderr  # fmt: skip
    assert "WH_PREFERRED_QUOTE" in r.stderr
    picked = json.loads(
        wh("query", "zscore", "btc", "--window", "5", "--exchange", "kraken", "--format", "json").stdout
    )
    assert {p["symbol"] for p in picked} == {"XBT/EUR"}
    monkeypatch.setenv("WH_PREFERRED_QUOTE", "usd")
    picked = json.loads(wh("query", "zscore", "BTC", "--window", "5", "--format", "json").stdout)
    assert {p["symbol"] for p in picked} == {"BTC-USD"}
    assert json.loads(wh("query", "zscore", "ETH", "--window", "5", "--format", "json").stdout)[0]["symbol"] == "ETHBTC"


@pytest.mark.parametrize("engine_name", ["duckdb", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def test_the_stored_key_lookup_is_skipped_only_where_no_stored_row_can_match(engine_name: str, home: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """DuckDB: a batch newer than everything stored of its instruments (per the catalog, kept
    in the rows' transaction) skips the lookup of stored dedup keys; any instrument whose batch
    rows reach back into what is stored is looked up. ClickHouse looks every batch up. Replays,
    overlaps and late ticks are stored exactly once on both."""
    import warehouse.sinks.clickhouse as ch_sink
    import warehouse.sinks.duckdb as duck_sink
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sinks import open_sinks
    from warehouse.sql.engines import close_embedded, open_engine

    looked_up: list[set[str]] = []
    for module in (duck_sink, ch_sink):
        real = module.existing_keys

        def spy(engine, table, data, real=real):
            looked_up.append(set(data.column("symbol").to_pylist()))
            return real(engine, table, data)

        monkeypatch.setattr(module, "existing_keys", spy)
    day = 86_400 * 10**9

    def quotes(symbols: str, start: int, n: int, step: int = 10**9) -> pa.Table:
        rows = [(s, start + i * step) for s in symbols for i in range(n)]
        return pa.table({
            "timestamp": [t for _, t in rows], "received_at": [t for _, t in rows], "exchange": ["x"] * len(rows),
            "symbol": [f"{s}USDT" for s, _ in rows], "asset_class": ["crypto"] * len(rows),
            "bid": [100.0 + i % 5 for i in range(len(rows))], "ask": [101.0 + i % 5 for i in range(len(rows))],
            "bid_size": [1.0] * len(rows), "ask_size": [1.0] * len(rows), "seq": pa.array([None] * len(rows), pa.int64()),
        }).cast(QUOTE_SCHEMA)  # fmt: skip

    t0 = 1_700_000_000 * 10**9
    batches = [
        (quotes("AB", t0, 100), set(), 200),  # nothing stored: no lookup
        (quotes("AB", t0 + day, 100), set(), 200),  # a newer day: no lookup
        (quotes("AB", t0, 100), {"AUSDT", "BUSDT"}, 0),  # a replay: looked up, nothing stored again
        (pa.concat_tables([quotes("A", t0 + 2 * day, 50), quotes("B", t0 + day + 50 * 10**9, 100)]),
         {"BUSDT"}, 100),  # A is new; B overlaps its stored rows: only B looked up (50 dup + 50 new)
        (quotes("A", t0 + day + 500_000_000, 3), {"AUSDT"}, 3),  # late ticks between stored ones
    ]  # fmt: skip
    sinks = open_sinks([engine_name], get_settings())
    try:
        for data, expect_lookup, expect_new in batches:
            looked_up.clear()
            counts = sinks[0].write({"market_ticks": data})
            if engine_name == "clickhouse":  # its catalog is not transactional with the rows: always looked up
                expect_lookup = set(data.column("symbol").to_pylist())
            assert set().union(*looked_up) == expect_lookup, (looked_up, expect_lookup)
            assert counts.stored["market_ticks"] == expect_new
    finally:
        for s in sinks:
            s.close()
    with open_engine(engine_name, get_settings(), read_only=True) as eng:
        n = eng.query("SELECT count(*) AS n, count(DISTINCT (symbol, timestamp)) AS d FROM wh.market_ticks").to_pylist()
    close_embedded()
    assert n == [{"n": 503, "d": 503}]


def same_zscores(a: pa.Table, b: pa.Table) -> bool:
    """The same rows; the numbers within 1e-9 (a `since` of 1970 takes the kernel at query time,
    the default read the values stored at write time: the same formula, summed in another order)."""
    import math

    if a.num_rows != b.num_rows or a.column_names != b.column_names:
        return False
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if name in ("rolling_mean", "rolling_std", "z_score"):
            if not all((u is None and v is None) or (u is not None and v is not None and math.isclose(u, v, rel_tol=1e-9,
                       abs_tol=1e-9)) for u, v in zip(x, y, strict=True)):  # fmt: skip
                return False
        elif x != y:
            return False
    return True


@pytest.mark.clickhouse
def test_the_newest_z_scores_read_a_bounded_range_and_equal_a_full_read(home: Path, tardis, monkeypatch) -> None:
    """`wh query zscore` of the newest rows reads from a time the catalog says is recent
    enough; the result equals the unbounded read, and a bound that proves too tight (the
    oldest row's window not full) falls back to the full read."""
    from datetime import UTC, datetime

    import warehouse.analytics as analytics
    from warehouse.config import get_settings
    from warehouse.sql.engines import close_embedded, open_engine

    wh("import", *map(str, tardis))
    calls: list[dict] = []
    real_run = analytics.run
    monkeypatch.setattr(analytics, "run", lambda eng, name, **kw: calls.append(kw) or real_run(eng, name, **kw))
    for engine in ("duckdb", "clickhouse"):
        with open_engine(engine, get_settings(), read_only=True) as eng:
            for window, limit in ((60, 100), (7, 20), (1000, 50)):
                calls.clear()
                bounded = analytics.zscore(eng, "BTCUSDT", window=window, limit=limit)
                full = analytics.zscore(
                    eng, "BTCUSDT", window=window, limit=limit, since=datetime(1970, 1, 1, tzinfo=UTC)
                )
                assert same_zscores(bounded, full) and bounded.num_rows == limit
                if window == 1000:  # 1,049 rows of 9,999 quotes: not worth a bound (< 16 ×)
                    assert "since" not in calls[0], calls
                else:
                    assert calls[0]["since"] > datetime(2020, 2, 22, 0, 3, tzinfo=UTC), calls
            # a bound too tight for the window: detected, read again unbounded
            import warehouse.analytics.instruments as instruments

            tight = ("binance-futures", datetime(2020, 2, 22, 0, 3, 47, tzinfo=UTC))
            monkeypatch.setattr(analytics, "recent_bound", lambda e, s, x, rows, tight=tight: tight)
            calls.clear()
            again = analytics.zscore(eng, "BTCUSDT", window=60, limit=100)
            full = analytics.zscore(eng, "BTCUSDT", window=60, limit=100, since=datetime(1970, 1, 1, tzinfo=UTC))
            assert len(calls) == 3 and same_zscores(again, full)
            monkeypatch.setattr(analytics, "recent_bound", instruments.recent_bound)
        close_embedded()


def test_a_kept_bound_stays_right_when_newer_quotes_arrive(home: Path, tardis) -> None:
    """The catalog bound is kept for a few seconds per engine; quotes stored meanwhile only
    make it wider than needed, so the newest rows still come back, the new ones among them."""
    from datetime import UTC, datetime

    import polars as pl

    import warehouse.analytics as analytics
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sinks.duckdb import DuckDBSink
    from warehouse.sql.engines import open_engine

    wh("import", str(tardis[0]), "--engine", "duckdb")
    with open_engine("duckdb", get_settings()) as eng:
        first = analytics.zscore(eng, "BTCUSDT", window=60, limit=100)  # the bound is now kept
        last = eng.query(
            "SELECT max(timestamp) AS t, last(bid ORDER BY timestamp) AS b FROM wh.market_ticks"
        ).to_pylist()[0]
        t0 = int(pl.Series([last["t"]]).dt.epoch("ns")[0])
        newer = pa.table({"timestamp": [t0 + i * 1_000_000 for i in range(1, 31)],
                          "received_at": [t0 + i * 1_000_000 + 5 for i in range(1, 31)],
                          "exchange": ["binance-futures"] * 30, "symbol": ["BTCUSDT"] * 30,
                          "asset_class": ["crypto"] * 30, "bid": [last["b"] + i * 0.5 for i in range(1, 31)],
                          "ask": [last["b"] + 1 + i * 0.5 for i in range(1, 31)], "bid_size": [1.0] * 30,
                          "ask_size": [1.0] * 30, "seq": pa.nulls(30, pa.int64())})  # fmt: skip
        DuckDBSink(get_settings(), engine=eng).write({"market_ticks": newer.cast(QUOTE_SCHEMA)})  # as a writer does
        again = analytics.zscore(eng, "BTCUSDT", window=60, limit=100)
        full = analytics.zscore(eng, "BTCUSDT", window=60, limit=100, since=datetime(1970, 1, 1, tzinfo=UTC))
        assert same_zscores(again, full) and again.to_pylist() != first.to_pylist()
        assert again.column("bid")[0].as_py() == last["b"] + 15.0  # the newest row is a new one


@pytest.mark.parametrize("engine_name", ["duckdb", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def test_a_batch_of_quotes_and_trades_updates_both_spans(engine_name: str, home: Path) -> None:
    """A stream batch holds both kinds: the catalog row gets the trades' span in first/last_ts
    and the quotes' own span in first/last_quote_ts."""
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA, TRADE_SCHEMA
    from warehouse.sinks import open_sinks

    t0 = 1_700_000_000 * 10**9
    quotes = pa.table({
        "timestamp": [t0 + 10**9, t0 + 2 * 10**9], "received_at": [t0 + 10**9, t0 + 2 * 10**9],
        "exchange": ["x", "x"], "symbol": ["QUSDT", "QUSDT"], "asset_class": ["crypto"] * 2,
        "bid": [1.0, 1.1], "ask": [1.2, 1.3], "bid_size": [1.0, 1.0], "ask_size": [1.0, 1.0],
        "seq": pa.array([None, None], pa.int64()),
    }).cast(QUOTE_SCHEMA)  # fmt: skip
    trades = pa.table({
        "timestamp": [t0, t0 + 5 * 10**9], "received_at": [t0, t0 + 5 * 10**9], "exchange": ["x", "x"],
        "symbol": ["QUSDT", "QUSDT"], "asset_class": ["crypto"] * 2, "trade_id": ["a", "b"], "side": ["buy", "sell"],
        "price": [1.1, 1.2], "size": [1.0, 2.0], "seq": pa.array([None, None], pa.int64()),
    }).cast(TRADE_SCHEMA)  # fmt: skip
    sinks = open_sinks([engine_name], get_settings())
    try:
        sinks[0].write({"market_ticks": quotes, "trades": trades})
    finally:
        for s in sinks:
            s.close()
    (row,) = catalog(engine_name)
    to_ns = lambda d: int(d.replace(tzinfo=UTC).timestamp() * 10**9)  # noqa: E731
    assert (to_ns(row["first_ts"]), to_ns(row["last_ts"])) == (t0, t0 + 5 * 10**9)
    assert (to_ns(row["first_quote_ts"]), to_ns(row["last_quote_ts"])) == (t0 + 10**9, t0 + 2 * 10**9)
    assert (row["quotes"], row["trades"]) == (2, 2)
