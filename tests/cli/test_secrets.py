"""Secrets in settings never reach the terminal through a `wh` command.

A canary password goes into WH_CLICKHOUSE_URL (and the other secret-bearing settings) in
the shapes that used to leak — no scheme, `/` or `#` in the password, a bad port — and
every command that reads ClickHouse must answer with one `Error:` line, exit 1, no
traceback and no canary. (The settings layer itself: tests/unit/test_config_secrets.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from warehouse.cli.main import app

CANARY = "Kq7Zv4XwCanary"
runner = CliRunner()

LEAKY_URLS = {
    "no scheme": f"default:{CANARY}@localhost:8123",
    "slash in password": f"http://default:{CANARY[:5]}/{CANARY[5:]}@localhost:8123",
    "hash in password": f"http://default:{CANARY[:5]}#{CANARY[5:]}@localhost:8123",
    "bad port": f"http://default:{CANARY}@localhost:80x",
}
COMMANDS = {
    "status": ["status"],
    "query": ["query", "zscore", "BTCUSDT", "--engine", "clickhouse"],
    "migrate": ["migrate"],
    "ingest": ["ingest", "--stop-when-idle", "1"],
}


def canaries(url: str) -> list[str]:
    """The password as written in `url` (after the user's `:`) and the canary itself."""
    written = url.split("default:", 1)[1].rsplit("@", 1)[0]
    return [CANARY, written]


def assert_clean_error(result, secrets: list[str]) -> None:
    text = result.output  # stdout and stderr, as a terminal shows them (click >= 8.2)
    assert result.exit_code == 1, text
    # the CLI ended on purpose (typer.Exit), not by an exception escaping with its message
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), text
    for s in secrets:
        assert s not in text, text


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", LEAKY_URLS)
def test_a_url_the_code_cannot_split_never_prints_the_password(home: Path, case: str, command: str) -> None:
    url = LEAKY_URLS[case]
    # a broker address so that `wh ingest` gets as far as the ClickHouse sink
    env = {"WH_CLICKHOUSE_URL": url, "WH_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    result = runner.invoke(app, COMMANDS[command], env=env)
    assert_clean_error(result, canaries(url))


def test_no_traceback_on_a_real_terminal(tmp_path: Path) -> None:
    """The subprocess path (`python -m warehouse.cli.main`): stderr is one line, no traceback."""
    url = LEAKY_URLS["slash in password"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WH_")}
    env |= {"WH_HOME": str(tmp_path / "wh"), "WH_CLICKHOUSE_URL": url}
    r = subprocess.run([sys.executable, "-m", "warehouse.cli.main", "status"], env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("Error:") and len(r.stderr.strip().splitlines()) == 1
    for s in canaries(url):
        assert s not in r.stdout + r.stderr


def test_credentials_in_host_or_kafka_bootstrap_are_refused_redacted(home: Path) -> None:
    cases = [
        ({"WH_CLICKHOUSE_HOST": f"bob:{CANARY}@ch.example"}, ["query", "zscore", "BTCUSDT", "--engine", "clickhouse"]),
        ({"WH_KAFKA_BOOTSTRAP": f"SASL_SSL://bob:{CANARY}@kafka.example:9092", "WH_KAFKA_PASSWORD": CANARY + "k"},
         ["status"]),
    ]  # fmt: skip
    for env, args in cases:
        assert_clean_error(runner.invoke(app, args, env=env), [CANARY])
    r = runner.invoke(app, ["feed", "--bootstrap", f"bob:{CANARY}@kafka.example:9092", "-n", "1"])
    assert_clean_error(r, [CANARY])


def test_bad_settings_end_the_command_with_one_clean_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic shows `input_value=…`: a password typed into the wrong variable would print."""
    monkeypatch.setenv("WH_CLICKHOUSE_SECURE", CANARY)  # a password in a boolean
    monkeypatch.setenv("WH_CLICKHOUSE_PASSWORD", CANARY + "ch")
    monkeypatch.setenv("WH_KAFKA_PASSWORD", CANARY + "kafka")
    result = runner.invoke(app, ["status"])
    assert_clean_error(result, [CANARY])
