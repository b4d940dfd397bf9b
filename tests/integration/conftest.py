"""Fixtures shared by the integration tests: the engines, and the embedded Kafka-protocol broker.

`engine` runs a test once per engine (ENGINES; QuestDB joins here), on a fresh WH_HOME; a
module with a warehouse of its own overrides `engine` and keeps the parametrisation by
asking for `engine_name`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from servers import real_broker, server_fixture

WH = [sys.executable, "-m", "warehouse.cli.main"]
ENGINES = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("clickhouse", id="clickhouse", marks=pytest.mark.clickhouse),
]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(engine_name: str, home: Path) -> Iterator[Any]:
    """An opened engine (tables not yet migrated) on a fresh WH_HOME."""
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    eng = open_engine(engine_name, get_settings())
    try:
        yield eng
    finally:
        eng.close()


@contextmanager
def _wh_broker(folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """`wh broker` in a child process: librdkafka's mock cluster, its address on the first line."""
    proc = subprocess.Popen([*WH, "broker"], env={**os.environ, "WH_HOME": str(folder)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("bootstrap="), line
        yield line.split("=", 1)[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


# The broker of the Kafka tests: WH_TEST_KAFKA_BOOTSTRAP (any Kafka-protocol cluster), else the real
# Apache Kafka of WH_TEST_REAL_KAFKA_BOOTSTRAP (CI: always), else `wh broker` (librdkafka's mock).
broker = server_fixture("broker", from_env=lambda: os.environ.get("WH_TEST_KAFKA_BOOTSTRAP") or real_broker(),
                        start=_wh_broker)  # fmt: skip
# The embedded mock only: the retention-loss tests need its ~5 MB per partition.
mock_broker = server_fixture("mock_broker", from_env=lambda: None, start=_wh_broker)


@pytest.fixture
def topic() -> str:
    return f"ticks-{uuid.uuid4().hex[:8]}"
