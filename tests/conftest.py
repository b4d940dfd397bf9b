from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: bounded in the default run, longer under `pytest -m slow` (.ci/run sets
# HYPOTHESIS_PROFILE=slow for that run).
settings.register_profile("default", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("slow", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
QUOTES = SHARED / "tardis_binance-futures_quotes_BTCUSDT_2020-02-22.csv"
TRADES = SHARED / "tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/unit" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh WH_HOME per test; the embedded ClickHouse client is closed afterwards."""
    from warehouse.sql.engines import close_embedded

    h = tmp_path / "wh_data"
    monkeypatch.setenv("WH_HOME", str(h))
    for var in ("WH_CLICKHOUSE_URL", "WH_CLICKHOUSE_HOST"):
        monkeypatch.delenv(var, raising=False)
    yield h
    close_embedded()


@pytest.fixture
def tardis() -> tuple[Path, Path]:
    if not QUOTES.is_file() or not TRADES.is_file():
        pytest.skip(f"Tardis samples not found in {SHARED} (the shared/ folder is absent)")
    return QUOTES, TRADES
