"""Fixtures shared by the integration tests: the embedded Kafka-protocol broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

WH = [sys.executable, "-m", "warehouse.cli.main"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    external = os.environ.get("WH_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    home = tmp_path_factory.mktemp("broker")
    proc = subprocess.Popen([*WH, "broker"], env={**os.environ, "WH_HOME": str(home)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("bootstrap="), line
    yield line.split("=", 1)[1]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def topic() -> str:
    return f"ticks-{uuid.uuid4().hex[:8]}"


