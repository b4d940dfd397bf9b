"""`wh bench analytics`: rows/s of the named queries per engine, beside polars in memory.

The same run builds N synthetic ticks (quotes + 20 % trades over 5 days, 165 instruments)
and a ledger of T traders × F fills, loads them into DuckDB and embedded ClickHouse, and
holds the same rows as polars DataFrames. Each query then runs on both engines (median
of `--repeats`, after one warm-up) and polars computes the same result from memory; the
three results must have the same number of rows. rows/s = input rows the query has to
read (e.g. every trade for the all-symbol bars) / seconds. Loading is not timed.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from warehouse.bench.common import Log, load_clickhouse, load_duckdb, machine, quiet, synthetic_parquet

NS = 1_000_000_000
START = datetime(2024, 1, 2, tzinfo=UTC)
DAYS = 5


@dataclass
class Case:
    name: str
    rows_in: int
    query: str
    params: dict[str, Any]
    polars: Callable[[], Any]
    internal: bool = False


def _ledger(quotes: Any, traders: int, per_trader: int, seed: int = 5) -> tuple[Any, Any]:
    """Random fills at plausible prices: each symbol's mean mid ± 0.1 %."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    levels = quotes.group_by("exchange", "symbol").agg(pl.col("mid").mean().alias("level"),
                                                       pl.col("asset_class").first())  # fmt: skip
    levels = levels.sort("exchange", "symbol")
    n = traders * per_trader
    sym = rng.integers(0, levels.height, n)
    level = levels["level"].to_numpy()[sym]
    qty = np.round(rng.uniform(0.1, 10.0, n), 3)
    price = level * (1 + rng.normal(0, 1e-3, n))
    ts = rng.integers(int(START.timestamp()) * NS, int((START + timedelta(days=DAYS)).timestamp()) * NS, n)
    trader_ids = np.array([f"B{i:06d}" for i in range(traders)])
    fills = pl.DataFrame({
        "fill_id": [f"f{i}" for i in range(n)], "order_id": [f"o{i}" for i in range(n)],
        "trader": trader_ids[np.repeat(np.arange(traders), per_trader)],
        "timestamp": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
        "symbol": levels["symbol"].to_numpy()[sym], "asset_class": levels["asset_class"].to_numpy()[sym],
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"), "qty": qty, "price": price,
        "fee": 0.0005 * qty * price, "slippage": np.abs(price - level) * qty,
        "exchange": levels["exchange"].to_numpy()[sym],
    })  # fmt: skip
    book = pl.DataFrame({
        "trader": trader_ids, "strategy": "bench", "params": "{}", "initial_cash": 1_000_000.0, "currency": "VCR",
        "created_at": pl.Series([int(START.timestamp()) * NS - NS] * traders).cast(pl.Datetime("ns", "UTC")),
    })  # fmt: skip
    return fills, book


def _polars_cases(q: Any, t: Any, fills: Any, book: Any, symbol: str, at: datetime) -> dict[str, Callable[[], Any]]:
    """The same computations as the SQL files, in polars, on frames already in memory."""
    import polars as pl

    qkey = ["timestamp", "received_at", "seq", "bid", "ask"]
    tkey = ["timestamp", "received_at", "seq", "trade_id"]

    def bucket(col: str, seconds: int) -> pl.Expr:
        return pl.col(col).dt.truncate(f"{seconds}s")

    def bars_1m() -> Any:
        return (t.sort(tkey).group_by(bucket("timestamp", 60).alias("bar_start"), "exchange", "symbol")
                .agg(pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
                     pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
                     pl.col("size").sum().alias("volume"),
                     ((pl.col("price") * pl.col("size")).sum() / pl.col("size").sum()).alias("vwap"),
                     pl.len().alias("trades")))  # fmt: skip

    def spreads() -> Any:
        s = q.filter(pl.col("symbol") == symbol).with_columns((pl.col("ask") - pl.col("bid")).alias("spread"))
        return s.group_by(bucket("timestamp", 60).alias("bar_start")).agg(
            pl.len(), pl.col("spread").mean(), pl.col("spread").min().alias("smin"), pl.col("spread").max().alias("smax"),
            (1e4 * pl.col("spread") / pl.col("mid")).mean().alias("bps"), pl.col("mid").mean().alias("mm"),
            pl.col("mid").min().alias("mmin"), pl.col("mid").max().alias("mmax"))  # fmt: skip

    def realized_vol() -> Any:
        closes = (q.filter(pl.col("symbol") == symbol).sort(qkey)
                  .group_by(bucket("timestamp", 60).alias("bar_start")).agg(pl.col("mid").last()).sort("bar_start"))  # fmt: skip
        r = closes.with_columns((pl.col("mid") / pl.col("mid").shift(1)).log().alias("r")).drop_nulls("r")
        return r.group_by(bucket("bar_start", 3600).alias("period")).agg(pl.len(), (pl.col("r") ** 2).sum())

    def vwap_rolling() -> Any:
        s = t.filter(pl.col("symbol") == symbol).sort(tkey)
        pv = (s["price"] * s["size"]).rolling_sum(100, min_samples=1)
        return s.with_columns((pv / s["size"].rolling_sum(100, min_samples=1)).alias("vwap"))

    def leaderboard() -> Any:
        f = fills.filter(pl.col("timestamp") < at)
        pos = f.sort("timestamp", "fill_id").group_by("trader", "exchange", "symbol").agg(
            pl.when(pl.col("side") == "buy").then(pl.col("qty")).otherwise(-pl.col("qty")).sum().alias("position"),
            (pl.when(pl.col("side") == "buy").then(-pl.col("qty") * pl.col("price"))
             .otherwise(pl.col("qty") * pl.col("price")) - pl.col("fee")).sum().alias("cash_flow"),
            pl.col("price").last().alias("last_price"))  # fmt: skip
        marks = q.filter(pl.col("timestamp") < at).sort(qkey).group_by("exchange", "symbol").agg(pl.col("mid").last())
        pos = pos.join(marks, on=["exchange", "symbol"], how="left").with_columns(
            (pl.col("position") * pl.coalesce("mid", "last_price")).alias("value")
        )
        per = pos.group_by("trader").agg(pl.col("cash_flow").sum(), pl.col("value").sum())
        navs = book.join(per, on="trader", how="left").with_columns(
            (pl.col("initial_cash") + pl.col("cash_flow").fill_null(0) + pl.col("value").fill_null(0)).alias("nav")
        )
        return navs.sort(["nav", "trader"], descending=[True, False]).with_row_index("rank", 1).head(100)

    return {"bars_1m": bars_1m, "spreads": spreads, "realized_vol": realized_vol, "vwap_rolling": vwap_rolling,
            "leaderboard": leaderboard}  # fmt: skip


@dataclass(frozen=True)
class CaseResult:
    name: str
    rows_in: int  # input rows the query has to read
    rates: dict[str, float]  # duckdb / clickhouse / polars → rows_in per second (median)
    sizes: dict[str, int]  # … → result rows

    @property
    def same_rows(self) -> bool:
        return len(set(self.sizes.values())) == 1


@dataclass
class AnalyticsBench:
    machine: str
    setup_seconds: float
    quotes: int
    trades: int
    fills: int
    traders: int
    cases: list[CaseResult] = field(default_factory=list)


def _median_rate(rows_in: int, repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """One warm-up, then `repeats` timed runs: (rows_in / median seconds, last result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        s = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - s)
    return rows_in / statistics.median(times), out


def run(ticks: int = 10_000_000, traders: int = 100_000, fills_per_trader: int = 10, repeats: int = 3, *,
        log: Log = quiet) -> AnalyticsBench:  # fmt: skip
    import polars as pl

    from warehouse.analytics.ledger import write_ledger
    from warehouse.config import Settings
    from warehouse.records import Kind
    from warehouse.sql import queries
    from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
    from warehouse.sql.migrate import migrate

    work = Path(tempfile.mkdtemp(prefix="wh-bench-analytics-"))
    try:
        t0 = time.perf_counter()
        log(f"writing {ticks:,} synthetic ticks over {DAYS} days to Parquet")
        files = synthetic_parquet(work / "feed", ticks, duration_s=DAYS * 86_400)
        settings = Settings(home=work / "wh")
        duck = DuckDBEngine(settings.duckdb_path)
        try:
            ch = ClickHouseEngine(settings)
            log("loading DuckDB and ClickHouse")
            for eng in (duck, ch):
                migrate(eng)
            load_duckdb(duck, files)
            load_clickhouse(ch, files)
            q = pl.read_parquet(files[Kind.QUOTE].path).with_columns(pl.col("seq").fill_null(-1))
            q = q.with_columns(((pl.col("bid") + pl.col("ask")) / 2).alias("mid"))
            t = pl.read_parquet(files[Kind.TRADE].path).with_columns(pl.col("seq").fill_null(-1))
            log(f"ledger: {traders:,} traders × {fills_per_trader} fills")
            fills, book = _ledger(q, traders, fills_per_trader)
            for eng in (duck, ch):
                write_ledger(eng, {"fills": fills.to_arrow(), "traders": book.to_arrow()})
            result = AnalyticsBench(machine=machine(), setup_seconds=time.perf_counter() - t0, quotes=q.height,
                                    trades=t.height, fills=fills.height, traders=traders)  # fmt: skip

            symbol = q.group_by("symbol").len().sort("len", descending=True)["symbol"][0]
            nq, nt = q.filter(pl.col("symbol") == symbol).height, t.filter(pl.col("symbol") == symbol).height
            at = START + timedelta(days=DAYS)
            end = START + timedelta(days=DAYS + 1)
            pol = _polars_cases(q, t, fills, book, symbol, at)
            cases = [
                Case("bars_1m (all symbols)", t.height, "bars_1m_day", {"since": START, "until": end},
                     pol["bars_1m"], internal=True),
                Case(f"spreads {symbol} 60 s", nq, "spreads", {"symbol": symbol, "interval": 60, "limit": 2**62},
                     pol["spreads"]),
                Case(f"realized_vol {symbol} 60 s/1 h", nq, "realized_vol",
                     {"symbol": symbol, "interval": 60, "period": 3600, "limit": 2**62}, pol["realized_vol"]),
                Case(f"vwap_rolling {symbol} w=100", nt, "vwap_rolling",
                     {"symbol": symbol, "window": 100, "limit": nt}, pol["vwap_rolling"]),
                Case(f"leaderboard top 100 of {traders:,}", fills.height + q.height, "leaderboard",
                     {"at": at, "limit": 100}, pol["leaderboard"]),
            ]  # fmt: skip
            for c in cases:
                log(f"running {c.name}")
                named = queries.load(c.query, internal=c.internal)
                rates: dict[str, float] = {}
                sizes: dict[str, int] = {}
                for eng in (duck, ch):
                    rate, res = _median_rate(
                        c.rows_in,
                        repeats,
                        lambda eng=eng, c=c, named=named: named.run(eng, c.params),  # type: ignore[misc]
                    )
                    rates[eng.name], sizes[eng.name] = rate, res.num_rows
                rate, out = _median_rate(c.rows_in, repeats, c.polars)
                rates["polars"], sizes["polars"] = rate, out.height
                result.cases.append(CaseResult(c.name, c.rows_in, rates, sizes))
        finally:
            duck.close()
            close_embedded()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result
