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


def equity_chart(table: pa.Table, *, trader: str, path: Path) -> Path:
    return _save(equity_figure(table, trader=trader), path)


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


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


def equity_figure(table: pa.Table, *, trader: str) -> Any:
    """Top: NAV and its running peak. Bottom: drawdown in percent (filled)."""
    plt = _pyplot()
    ts = table.column("ts").to_pylist()
    nav = table.column("nav").to_numpy(zero_copy_only=False)
    peak = table.column("peak").to_numpy(zero_copy_only=False)
    dd = table.column("drawdown").to_numpy(zero_copy_only=False) * 100
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, height_ratios=(2, 1))
    top.plot(ts, nav, lw=1.2, color="#1f4e79", label="NAV")
    top.plot(ts, peak, lw=0.9, color="grey", ls="--", label="running peak")
    top.set_ylabel("NAV (account currency)")
    top.set_title(f"{trader}: equity curve (cash + positions marked to the warehouse's quotes)")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    bottom.fill_between(ts, dd, 0, color="#c00000", alpha=0.35, label="drawdown")
    bottom.plot(ts, dd, lw=0.8, color="#c00000")
    bottom.set_ylabel("drawdown (%)")
    bottom.set_xlabel("time (UTC)")
    bottom.set_title(f"max drawdown {dd.min():.2f} %", fontsize=10, loc="left")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
