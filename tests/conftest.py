from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: bounded in the default run, longer under `pytest -m slow` (.ci/run sets
# HYPOTHESIS_PROFILE=slow for that run).
settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "slow",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The real samples are third-party files: they stay in WH_SAMPLES_DIR (default ../shared/data,
# warehouse.config.Settings.samples_dir) and are never copied into the repository.
QUOTES = "tardis_binance-futures_quotes_BTCUSDT_2020-02-22.csv"
TRADES = "tardis_binance-futures_trades_BTCUSDT_2020-02-22.csv"
LAYER_MARKERS = {"tests/unit/": pytest.mark.unit, "tests/cli/": pytest.mark.cli}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.as_posix()
        for folder, marker in LAYER_MARKERS.items():
            if f"/{folder}" in path:
                item.add_marker(marker)


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


@pytest.fixture(scope="session")
def tardis() -> tuple[Path, Path]:
    """The real Tardis sample day (BTCUSDT quotes and trades, binance-futures, 2020-02-22);
    the tests that need it skip when the samples folder is absent."""
    from warehouse.config import Settings

    folder = Settings().samples_dir
    quotes, trades = folder / QUOTES, folder / TRADES
    if not quotes.is_file() or not trades.is_file():
        pytest.skip(f"Tardis samples not found in {folder} (set WH_SAMPLES_DIR; the shared/ folder is absent)")
    return quotes, trades
