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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from warehouse.cli.common import console

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
            (pl.col("position") * pl.coalesce("mid", "last_price")).alias("value"))
        per = pos.group_by("trader").agg(pl.col("cash_flow").sum(), pl.col("value").sum())
        navs = book.join(per, on="trader", how="left").with_columns(
            (pl.col("initial_cash") + pl.col("cash_flow").fill_null(0) + pl.col("value").fill_null(0)).alias("nav"))
        return navs.sort(["nav", "trader"], descending=[True, False]).with_row_index("rank", 1).head(100)

    return {"bars_1m": bars_1m, "spreads": spreads, "realized_vol": realized_vol, "vwap_rolling": vwap_rolling,
            "leaderboard": leaderboard}  # fmt: skip


def register_analytics(app: typer.Typer) -> None:
    @app.command("analytics")
    def bench_analytics(
        ticks: int = typer.Option(10_000_000, "--ticks", help="synthetic ticks (quotes + 20 % trades, 5 days)"),
        traders: int = typer.Option(100_000, "--traders", help="traders in the ledger (leaderboard size)"),
        fills_per_trader: int = typer.Option(10, "--fills-per-trader"),
        repeats: int = typer.Option(3, "--repeats", help="timed runs per query and engine (median)"),
    ) -> None:
        """Rows/s per query per engine beside polars computing the same in memory (same run)."""
        import polars as pl
        import pyarrow as pa
        import pyarrow.parquet as pq

        from warehouse.analytics.ledger import write_ledger
        from warehouse.cli.bench import _machine
        from warehouse.cli.main import write_parquet
        from warehouse.config import Settings
        from warehouse.ingest.synthetic import SyntheticFeed
        from warehouse.sql import queries
        from warehouse.sql.engines import ClickHouseEngine, DuckDBEngine, close_embedded
        from warehouse.sql.migrate import migrate

        work = Path(tempfile.mkdtemp(prefix="wh-bench-analytics-"))
        try:
            t0 = time.perf_counter()
            feed = SyntheticFeed(ticks=ticks, seed=42, duration_s=DAYS * 86_400, chunk=500_000)
            write_parquet(feed, work / "feed")
            settings = Settings(home=work / "wh")
            duck = DuckDBEngine(settings.duckdb_path)
            ch = ClickHouseEngine(settings)
            for eng in (duck, ch):
                migrate(eng)
            frames: dict[str, Any] = {}
            for name, table in (("quotes", "market_ticks"), ("trades", "trades")):
                path = work / "feed" / f"{name}.parquet"
                duck.con.execute(f"INSERT INTO wh.{table} SELECT * FROM read_parquet(?) "
                                 "ORDER BY asset_class, symbol, timestamp", [str(path)])  # fmt: skip
                for batch in pq.ParquetFile(path).iter_batches(batch_size=2_000_000):
                    ch.insert(f"wh.{table}", pa.Table.from_batches([batch]))
                ch.command(f"OPTIMIZE TABLE wh.{table} FINAL")
                frames[name] = pl.read_parquet(path).with_columns(pl.col("seq").fill_null(-1))
            q = frames["quotes"].with_columns(((pl.col("bid") + pl.col("ask")) / 2).alias("mid"))
            t = frames["trades"]
            fills, book = _ledger(q, traders, fills_per_trader)
            for eng in (duck, ch):
                write_ledger(eng, {"fills": fills.to_arrow(), "traders": book.to_arrow()})
            console.print(f"machine: {_machine()}; setup (generate + load both engines) {time.perf_counter() - t0:.0f} s")
            console.print(f"rows: {q.height:,} quotes, {t.height:,} trades, {fills.height:,} fills, {traders:,} traders")

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
            header = f"{'query':42s} {'rows in':>12s} {'duckdb rows/s':>15s} {'clickhouse rows/s':>18s} " \
                     f"{'polars rows/s':>15s} {'duck/polars':>11s} {'ch/polars':>10s}"  # fmt: skip
            console.print(header, highlight=False)
            for c in cases:
                named = queries.load(c.query, internal=c.internal)
                speeds: dict[str, float] = {}
                sizes: dict[str, int] = {}
                for eng in (duck, ch):
                    named.run(eng, c.params)
                    times = []
                    for _ in range(repeats):
                        s = time.perf_counter()
                        res = named.run(eng, c.params)
                        times.append(time.perf_counter() - s)
                    speeds[eng.name], sizes[eng.name] = c.rows_in / statistics.median(times), res.num_rows
                c.polars()
                times = []
                for _ in range(repeats):
                    s = time.perf_counter()
                    out = c.polars()
                    times.append(time.perf_counter() - s)
                speeds["polars"], sizes["polars"] = c.rows_in / statistics.median(times), out.height
                same = len(set(sizes.values())) == 1
                console.print(f"{c.name:42s} {c.rows_in:>12,} {speeds['duckdb']:>15,.0f} {speeds['clickhouse']:>18,.0f} "
                              f"{speeds['polars']:>15,.0f} {speeds['duckdb'] / speeds['polars']:>11.2f} "
                              f"{speeds['clickhouse'] / speeds['polars']:>10.2f}"
                              + ("" if same else f"  ROW COUNTS DIFFER {sizes}"), highlight=False)  # fmt: skip
            duck.close()
            close_embedded()
        finally:
            shutil.rmtree(work, ignore_errors=True)
