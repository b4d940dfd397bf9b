"""Exchange sessions per asset class, vectorized over int64-ns UTC timestamps.

    crypto       24/7
    forex        24/5: Sunday 22:00 UTC → Friday 22:00 UTC
    commodities  Sunday 23:00 → Friday 22:00 UTC, daily maintenance break 22:00–23:00 UTC
    equities, etfs, indices   Monday–Friday 09:30–16:00 America/New_York (DST-aware)

Exchange holidays are not modelled.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_NY = "America/New_York"


def _utc(ts: np.ndarray) -> pl.Series:
    return pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC"))


def is_open(asset_class: str, ts: np.ndarray) -> np.ndarray:
    """Boolean array: is the market of `asset_class` open at each timestamp (int64 ns UTC)?"""
    ts = np.asarray(ts, dtype=np.int64)
    if asset_class == "crypto":
        return np.ones(ts.shape, dtype=bool)
    t = _utc(ts)
    wd = t.dt.weekday().to_numpy()  # Monday=1 … Sunday=7
    minute = (t.dt.hour().cast(pl.Int32) * 60 + t.dt.minute().cast(pl.Int32)).to_numpy()
    if asset_class == "forex":
        return ((wd >= 1) & (wd <= 4)) | ((wd == 5) & (minute < 22 * 60)) | ((wd == 7) & (minute >= 22 * 60))
    if asset_class == "commodities":
        in_week = ((wd >= 1) & (wd <= 4)) | ((wd == 5) & (minute < 22 * 60)) | ((wd == 7) & (minute >= 23 * 60))
        return in_week & ~((minute >= 22 * 60) & (minute < 23 * 60))
    if asset_class in ("equities", "etfs", "indices"):
        ny = t.dt.convert_time_zone(_NY)
        nwd = ny.dt.weekday().to_numpy()
        nmin = (ny.dt.hour().cast(pl.Int32) * 60 + ny.dt.minute().cast(pl.Int32)).to_numpy()
        return (nwd <= 5) & (nmin >= 9 * 60 + 30) & (nmin < 16 * 60)
    raise ValueError(f"unknown asset class {asset_class!r}")
