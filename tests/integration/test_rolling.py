"""The O(1) all-symbol z-score kernel (analytics/rolling.py) against the reference: the SQL of
queries/zscore.sql on each engine, and a per-window two-pass in long double, on the real
BTCUSDT day and on synthetic quotes of many symbols, for small and large windows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
WH = [sys.executable, "-m", "warehouse.cli.main"]


def _close(ours: np.ndarray, ref: np.ndarray, tol: float = 1e-8) -> float:
    """Worst |a − b| / max(1, |b|); NaN must meet NaN."""
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "NULL on different rows"
    ok = ~np.isnan(ref)
    worst = float(np.max(np.abs(ours[ok] - ref[ok]) / np.maximum(1.0, np.abs(ref[ok])), initial=0.0))
    assert worst <= tol, worst
    return worst


@pytest.mark.slow
def test_the_kernel_equals_the_sql_on_both_engines_and_a_long_double_two_pass(home: Path, tardis,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    from warehouse import analytics
    from warehouse.analytics.rolling import zscore_all
    from warehouse.config import get_settings
    from warehouse.sql.engines import close_embedded, open_engine

    feed = tmp_path / "feed"
    for args in (["generate", "--ticks", "60000", "--instruments", "12", "--seed", "3", "--trade-ratio", "0",
                  "--out", str(feed)], ["import", *map(str, tardis)],
                 ["import", str(feed / "quotes.parquet"), "--format", "parquet"]):  # fmt: skip
        r = subprocess.run([*WH, *args], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    settings = get_settings()
    for engine in ("duckdb", "clickhouse"):
        with open_engine(engine, settings, read_only=True) as eng:
            for window in (1, 2, 7, 60, 1000):
                ours = zscore_all(eng, window)
                assert ours.num_rows > 60_000
                pairs = sorted(
                    set(zip(ours.column("exchange").to_pylist(), ours.column("symbol").to_pylist(), strict=True))
                )
                assert len(pairs) == 13  # BTCUSDT on two venues: two instruments
                for exchange, symbol in pairs:
                    mine = ours.filter(pa.compute.and_(pa.compute.equal(ours.column("symbol"), symbol),
                                                       pa.compute.equal(ours.column("exchange"), exchange)))  # fmt: skip
                    ref = analytics.zscore(eng, symbol, window=window, limit=0, exchange=exchange).to_pandas()
                    ref = ref.iloc[::-1]  # oldest first
                    assert mine.num_rows == len(ref), (engine, window, symbol)
                    z = mine.column("z_score").to_numpy(zero_copy_only=False).astype(float)
                    _close(z, ref["z_score"].to_numpy(dtype=float, na_value=np.nan))
                    _close(mine.column("rolling_std").to_numpy(), ref["rolling_std"].to_numpy(dtype=float), 1e-6)
        close_embedded()
    # the real day against an exact two-pass per window, in long double
    with open_engine("duckdb", settings, read_only=True) as eng:
        btc = zscore_all(eng, 60)
    btc = btc.filter(pa.compute.equal(btc.column("exchange"), "binance-futures"))
    bid = btc.column("bid").to_numpy().astype(np.longdouble)
    z = btc.column("z_score").to_numpy(zero_copy_only=False).astype(float)
    exact = np.empty(len(bid))
    for i in range(len(bid)):
        win = bid[max(0, i - 59) : i + 1]
        mu = win.sum() / len(win)
        sd = np.sqrt(((win - mu) ** 2).sum() / len(win))
        exact[i] = np.nan if win.min() == win.max() else float((bid[i] - mu) / sd)
    assert _close(z, exact, 1e-9) < 1e-9
