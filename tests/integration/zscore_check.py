"""The stored z-score invariant (issue 15), checked against the reference on the final table.

Every quote of wh.market_ticks has exactly one row in wh.quote_zscores (ClickHouse: read FINAL),
and per instrument, in the window order, each row equals what queries/zscore.sql computes over
the whole table: window_rows exactly, z_score within 1e-8 and NULL exactly where the
reference's is, rolling_mean and rolling_std within 1e-8 relative.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from warehouse.sql import queries

TOLERANCE = 1e-8
_ORDER = ["timestamp", "received_at", "seq", "bid", "ask", "bid_size", "ask_size"]


def stored_zscores(engine: Any) -> pl.DataFrame:
    final = " FINAL" if engine.name == "clickhouse" else ""
    df = pl.from_arrow(engine.query(f"SELECT * FROM wh.quote_zscores{final}"))
    assert isinstance(df, pl.DataFrame)
    return df


def assert_stored_zscores_match(engine: Any) -> int:
    """Assert the invariant; return the number of quotes checked (so a caller can see it ran)."""
    quotes = pl.from_arrow(engine.query("SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, "
                                        "ask_size FROM wh.market_ticks"))  # fmt: skip
    stored = stored_zscores(engine)
    assert isinstance(quotes, pl.DataFrame)
    assert stored.height == quotes.height, f"{stored.height} stored z-score rows for {quotes.height} quotes"
    ids = ["exchange", "symbol", *_ORDER]
    joined = quotes.join(stored, on=ids, how="left", nulls_equal=True)
    assert joined["window_rows"].null_count() == 0, "quotes without a stored z-score"
    checked = 0
    for (exchange, symbol), rows in joined.group_by(["exchange", "symbol"]):
        ref = pl.from_arrow(queries.load("zscore").run(engine, {"symbol": symbol, "exchange": exchange,
                                                                "limit": 2**62, "window": 60}))  # fmt: skip
        assert isinstance(ref, pl.DataFrame)
        mine = rows.sort(_ORDER, descending=True, nulls_last=False)  # the reference's order, newest first
        assert ref.height == mine.height, (exchange, symbol)
        assert ref["bid"].to_list() == mine["bid"].to_list(), (exchange, symbol, "order differs")
        assert ref["window_rows"].to_list() == mine["window_rows"].to_list(), (exchange, symbol)
        for column in ("rolling_mean", "rolling_std"):
            for a, b in zip(ref[column].to_list(), mine[column].to_list(), strict=True):
                assert math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-12), (exchange, symbol, column, a, b)
        for a, b in zip(ref["z_score"].to_list(), mine["z_score"].to_list(), strict=True):
            assert (a is None) == (b is None), (exchange, symbol, "NULL differs", a, b)
            if a is not None:
                assert abs(a - b) <= TOLERANCE, (exchange, symbol, a, b)
        checked += mine.height
    return checked
