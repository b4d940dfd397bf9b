"""Typed entry points over the named queries (queries/*.sql); results are Arrow tables.

ledger.py writes the trading ledger the portfolio queries read; materialize.py keeps the
per-day tables (1-minute bars, daily leaderboard); charts.py draws query results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from warehouse.analytics.instruments import recent_bound, resolve
from warehouse.analytics.rolling import STORED_WINDOW, zscore_arrays
from warehouse.errors import AmbiguousVenueError, UnknownSymbolError, UnknownVenueError
from warehouse.sql import queries
from warehouse.sql.engines import Engine

ZSCORE_COLUMNS = ("timestamp", "symbol", "bid", "rolling_mean", "rolling_std", "z_score")
ALL_ROWS = 2**62  # `limit=None` means the whole series


def run(engine: Engine, name: str, *, prefer_quote: str | None = None, internal: bool = False,
        **params: Any) -> pa.Table:  # fmt: skip
    """Run a named query. A market query of one symbol (it declares `symbol` and `exchange`)
    reads one venue: the one given, else the symbol's only one; a symbol on several venues
    without an exchange raises AmbiguousVenueError (their quotes are two books, not one).
    A symbol the warehouse does not have may be an asset (`BTC`): the instrument catalog
    names the instrument (analytics/instruments.py; `prefer_quote` settles several).
    `internal`: a building block of queries/internal/ (wh's own)."""
    query = queries.load(name, internal=internal, engine=engine.name)  # QuestDB: queries/questdb/
    declared = {p.name for p in query.params}
    market = {"symbol", "exchange"} <= declared and params.get("symbol") is not None
    if market and not params.get("exchange"):
        found = venues(engine, str(params["symbol"]))
        hit = resolve(engine, str(params["symbol"]), None, prefer_quote) if not found else None
        if hit is not None:
            return query.run(engine, {**params, "exchange": hit[0], "symbol": hit[1]})
        if len(found) > 1:
            raise AmbiguousVenueError(f"{params['symbol']} is on {len(found)} exchanges ({', '.join(found)}): "
                                      "name one with --exchange (exchange=…)")  # fmt: skip
        params = {**params, "exchange": found[0] if found else ""}
        return query.run(engine, params)
    table = query.run(engine, params)
    if (
        market and table.num_rows == 0
    ):  # an exchange was given: is it one the symbol trades on? (only now: no cost otherwise)
        found = venues(engine, str(params["symbol"]))
        hit = resolve(engine, str(params["symbol"]), str(params["exchange"]), prefer_quote) if not found else None
        if hit is not None:
            return query.run(engine, {**params, "exchange": hit[0], "symbol": hit[1]})
        if found and params["exchange"] not in found:
            raise UnknownVenueError(f"no exchange {params['exchange']!r} for {params['symbol']}; it trades on: "
                                    f"{', '.join(found)} (--exchange)")  # fmt: skip
    return table


# "nice" point intervals in seconds, up to the equity queries' limit (366 days)
NICE_INTERVALS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
                  86400, 172800, 604800, 1209600, 2592000, 31622400)  # fmt: skip


def nice_interval(span_seconds: float, points: int = 300) -> int:
    """The smallest interval of NICE_INTERVALS that covers `span_seconds` in at most `points` points."""
    for step in NICE_INTERVALS:
        if span_seconds / step <= points:
            return step
    return NICE_INTERVALS[-1]


def trader_span(engine: Engine, trader: str) -> tuple[datetime, datetime] | None:
    """(first fill, last quote of its instruments or last fill) of `trader`; None without fills."""
    row = queries.load("trader_span", internal=True).run(engine, {"trader": trader}).to_pylist()[0]
    if row["first_fill"] is None:
        return None
    ends = [t for t in (row["last_fill"], row["last_quote"]) if t is not None]
    return row["first_fill"], max(ends)


def equity_interval(engine: Engine, trader: str, points: int = 300) -> int:
    """An equity-curve interval giving about `points` points over the trader's span (a 4-minute
    replay at the default hourly interval was a single point)."""
    span = trader_span(engine, trader)
    return nice_interval((span[1] - span[0]).total_seconds() if span else 0.0, points)


def venues(engine: Engine, symbol: str) -> list[str]:
    """The exchanges `symbol` has quotes or trades on, sorted."""
    return [
        str(v)
        for v in queries.load("venues", internal=True, engine=engine.name)
        .run(engine, {"symbol": symbol})
        .column("exchange")
        .to_pylist()
    ]


def zscore(engine: Engine, symbol: str, *, window: int = 60, limit: int | None = 100, **other: Any) -> pa.Table:
    """Rolling z-score of `symbol`'s bid (or of the instrument an asset such as BTC names),
    newest first; raises UnknownSymbolError if no quotes.

    On DuckDB and ClickHouse the default window (60) reads the values stored with each quote
    (queries/zscore_stored.sql) and other windows (or a `since`, which starts the windows there)
    run the O(1) kernel over the newest `limit + window - 1` bids (analytics/rolling.py); QuestDB computes them in SQL
    (queries/questdb/zscore.sql). All give queries/zscore.sql's numbers.
    The newest few rows read a bounded time range when the instrument catalog says enough
    quotes lie in it (and the result confirms: its oldest row has a full window); else, and
    for a whole series, the symbol's every quote is considered."""
    # the parameters as queries/zscore.sql declares them (window in [1, 1000000], …), whichever path runs
    queries.load("zscore").bind({"symbol": symbol, "window": window, "limit": limit or ALL_ROWS,
                                 **{k: v for k, v in other.items() if k in ("exchange", "since")}})  # fmt: skip
    # a `since` of the caller's starts every window there (as queries/zscore.sql): not the stored ones
    stored = window == STORED_WINDOW and engine.name != "questdb" and "since" not in other
    if not stored and engine.name != "questdb":
        table = _zscore_kernel(engine, symbol, window, limit, other)
        if table is not None:
            return table
        return _unknown_symbol(engine, symbol)
    name = "zscore_stored" if stored else "zscore"
    sized: dict[str, Any] = {} if stored else {"window": window}
    if limit and "since" not in other:
        bound = recent_bound(engine, symbol, other.get("exchange") or None, limit + window - 1)
        if bound is not None:
            exchange, since = bound
            table = run(engine, name, symbol=symbol, limit=limit, **sized,
                        **{**other, "exchange": exchange, "since": since})  # fmt: skip
            if table.num_rows == limit and table.column("window_rows")[-1].as_py() == window:
                return table.select(list(ZSCORE_COLUMNS))
    table = run(engine, name, symbol=symbol, limit=limit or ALL_ROWS, **sized, **other)
    if table.num_rows == 0:
        return _unknown_symbol(engine, symbol)
    return table.select(list(ZSCORE_COLUMNS))


def _unknown_symbol(engine: Engine, symbol: str) -> pa.Table:
    known = run(engine, "symbols", limit=12).column("symbol").to_pylist()
    hint = f"; known symbols: {', '.join(known)}" if known else "; the warehouse has no quotes yet"
    raise UnknownSymbolError(f"unknown symbol {symbol!r} (no quotes on {engine.name}){hint}")


def _zscore_kernel(engine: Engine, symbol: str, window: int, limit: int | None,
                   other: dict[str, Any]) -> pa.Table | None:  # fmt: skip
    """The z-score at any window from the instrument's newest `limit + window - 1` bids and the
    O(1) kernel; None when the instrument has no quotes."""
    rows = limit + window - 1 if limit else ALL_ROWS
    table = None
    if limit and "since" not in other:
        bound = recent_bound(engine, symbol, other.get("exchange") or None, rows)
        if bound is not None:
            found = run(engine, "zscore_quotes", internal=True, symbol=symbol, rows=rows,
                        **{**other, "exchange": bound[0], "since": bound[1]})  # fmt: skip
            table = found if found.num_rows == rows else None
    if table is None:
        table = run(engine, "zscore_quotes", internal=True, symbol=symbol, rows=rows, **other)
    n = table.num_rows
    if n == 0:
        return None
    oldest_first = table.take(np.arange(n - 1, -1, -1))
    bid = oldest_first.column("bid").to_numpy()
    z, mean, std = zscore_arrays(bid, np.array([0, n], dtype=np.int64), window)
    # a read cut at `rows` leaves the oldest window - 1 rows without their full windows: not returned
    keep = min(n, limit) if limit else n
    out = pa.table({
        "timestamp": oldest_first.column("timestamp"), "symbol": oldest_first.column("symbol"), "bid": bid,
        "rolling_mean": mean, "rolling_std": std, "z_score": pa.array(z, from_pandas=True),
        "window_rows": np.minimum(np.arange(1, n + 1), window).astype(np.int64),
    }).slice(n - keep)  # fmt: skip
    return out.take(np.arange(keep - 1, -1, -1)).select(list(ZSCORE_COLUMNS))
