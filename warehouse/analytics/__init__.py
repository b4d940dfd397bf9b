"""Typed entry points over the named queries (queries/*.sql); results are Arrow tables.

ledger.py writes the trading ledger the portfolio queries read; materialize.py keeps the
per-day tables (1-minute bars, daily leaderboard); charts.py draws query results.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from warehouse.errors import AmbiguousVenueError, UnknownSymbolError, UnknownVenueError
from warehouse.sql import queries
from warehouse.sql.engines import Engine

ZSCORE_COLUMNS = ("timestamp", "symbol", "bid", "rolling_mean", "rolling_std", "z_score")
ALL_ROWS = 2**62  # `limit=None` means the whole series


def run(engine: Engine, name: str, **params: Any) -> pa.Table:
    """Run a named query. A market query of one symbol (it declares `symbol` and `exchange`)
    reads one venue: the one given, else the symbol's only one; a symbol on several venues
    without an exchange raises AmbiguousVenueError (their quotes are two books, not one)."""
    query = queries.load(name)
    declared = {p.name for p in query.params}
    market = {"symbol", "exchange"} <= declared and params.get("symbol") is not None
    if market and not params.get("exchange"):
        found = venues(engine, str(params["symbol"]))
        if len(found) > 1:
            raise AmbiguousVenueError(f"{params['symbol']} is on {len(found)} exchanges ({', '.join(found)}): "
                                      "name one with --exchange (exchange=…)")  # fmt: skip
        params = {**params, "exchange": found[0] if found else ""}
        return query.run(engine, params)
    table = query.run(engine, params)
    if market and table.num_rows == 0:  # an exchange was given: is it one the symbol trades on? (only now: no cost otherwise)
        found = venues(engine, str(params["symbol"]))
        if found and params["exchange"] not in found:
            raise UnknownVenueError(f"no exchange {params['exchange']!r} for {params['symbol']}; it trades on: "
                                    f"{', '.join(found)} (--exchange)")  # fmt: skip
    return table


def venues(engine: Engine, symbol: str) -> list[str]:
    """The exchanges `symbol` has quotes or trades on, sorted."""
    return [str(v) for v in queries.load("venues", internal=True).run(engine, {"symbol": symbol}).column("exchange").to_pylist()]


def zscore(engine: Engine, symbol: str, *, window: int = 60, limit: int | None = 100, **other: Any) -> pa.Table:
    """Rolling z-score of `symbol`'s bid, newest first; raises UnknownSymbolError if no quotes."""
    table = run(engine, "zscore", symbol=symbol, window=window, limit=limit or ALL_ROWS, **other)
    if table.num_rows == 0:
        known = run(engine, "symbols", limit=12).column("symbol").to_pylist()
        hint = f"; known symbols: {', '.join(known)}" if known else "; the warehouse has no quotes yet"
        raise UnknownSymbolError(f"unknown symbol {symbol!r} (no quotes on {engine.name}){hint}")
    return table.select(list(ZSCORE_COLUMNS))
