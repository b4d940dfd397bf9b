"""PNG charts (matplotlib, headless) of query results: z-score bands and equity curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def zscore_chart(table: pa.Table, *, symbol: str, window: int, path: Path) -> Path:
    return _save(zscore_figure(table, symbol=symbol, window=window), path)


def equity_chart(table: pa.Table, *, trader: str, path: Path, interval: int | None = None) -> Path:
    return _save(equity_figure(table, trader=trader, interval=interval), path)


def _save(fig: Any, path: Path) -> Path:
    """Write exactly `path` (matplotlib would append .png to a name without a known suffix)."""
    fmt = path.suffix[1:].lower()
    try:
        fig.savefig(path, dpi=110, format=fmt if fmt in fig.canvas.get_supported_filetypes() else "png")
    finally:
        _pyplot().close(fig)
    return path


FEW_POINTS = 60  # up to this many points, each is drawn as a marker too


def _time_axis(ax: Any, ts: list[Any], interval: int | None) -> None:
    """The x-axis spans the data (matplotlib gives one point an axis of years), with date labels
    that fit the span (seconds for a 4-minute replay, dates for a month)."""
    import matplotlib.dates as mdates

    lo, hi = min(ts), max(ts)
    span = (hi - lo).total_seconds()
    pad = max(span * 0.03, (interval or 60) / 2)
    ax.set_xlim(_shift(lo, -pad), _shift(hi, pad))
    locator = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))


def _shift(t: Any, seconds: float) -> Any:
    from datetime import timedelta

    return t + timedelta(seconds=seconds)


def zscore_figure(table: pa.Table, *, symbol: str, window: int) -> Any:
    """Top: bid, rolling mean and mean ± 2σ. Bottom: z-score with ±2 lines. `table` is newest first."""
    plt = _pyplot()
    t = table.sort_by("timestamp")
    ts = t.column("timestamp").to_pylist()
    bid = t.column("bid").to_numpy(zero_copy_only=False)
    mean = t.column("rolling_mean").to_numpy(zero_copy_only=False)
    std = t.column("rolling_std").to_numpy(zero_copy_only=False)
    z = t.column("z_score").to_numpy(zero_copy_only=False)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, height_ratios=(2, 1))
    top.plot(ts, bid, lw=0.8, color="#1f4e79", label="bid")
    top.plot(ts, mean, lw=1.0, color="#e07b00", label=f"rolling mean ({window})")
    top.fill_between(ts, mean - 2 * std, mean + 2 * std, color="#e07b00", alpha=0.18, label="mean ± 2σ")
    top.set_ylabel("price")
    top.set_title(f"{symbol}: rolling z-score of the bid (window {window} quotes, population σ)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.plot(ts, z, lw=0.8, color="#1f4e79", label="z-score")
    for level in (2, -2):
        bottom.axhline(level, color="#c00000", lw=1, ls="--")
    bottom.axhline(0, color="grey", lw=0.6)
    bottom.set_ylabel("z-score (σ)")
    bottom.set_xlabel("event time (UTC)")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def equity_figure(table: pa.Table, *, trader: str, interval: int | None = None) -> Any:
    """Top: NAV and its running peak. Bottom: drawdown in percent (filled). The x-axis is the
    data's span; with few points every point is marked (one point alone is otherwise invisible)."""
    plt = _pyplot()
    ts = table.column("ts").to_pylist()
    nav = table.column("nav").to_numpy(zero_copy_only=False)
    peak = table.column("peak").to_numpy(zero_copy_only=False)
    dd = table.column("drawdown").to_numpy(zero_copy_only=False) * 100
    marker = {"marker": "o", "markersize": 4} if len(ts) <= FEW_POINTS else {}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, height_ratios=(2, 1))
    top.plot(ts, nav, lw=1.2, color="#1f4e79", label="NAV", **marker)
    top.plot(ts, peak, lw=0.9, color="grey", ls="--", label="running peak")
    top.set_ylabel("NAV (account currency)")
    every = f", a point every {_duration(interval)}" if interval else ""
    top.set_title(f"{trader}: equity curve (cash + positions marked to the warehouse's quotes{every})")
    top.legend(loc="best")
    top.grid(alpha=0.3)
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    bottom.fill_between(ts, dd, 0, color="#c00000", alpha=0.35, label="drawdown")
    bottom.plot(ts, dd, lw=0.8, color="#c00000", **marker)
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("time (UTC)")
    bottom.set_title(f"max drawdown {dd.min():.2f} %", fontsize=10, loc="left")
    bottom.grid(alpha=0.3)
    if ts:
        _time_axis(bottom, ts, interval)
    fig.tight_layout()
    return fig


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
