"""Secrets in settings never reach a message, a traceback, a log or the terminal.

A canary password goes into WH_CLICKHOUSE_URL (and the other secret-bearing settings) in
the shapes that used to leak — no scheme, `/` or `#` in the password, a bad port — and
every command that reads ClickHouse must answer with one `Error:` line, exit 1, no
traceback and no canary. The property test does the same for arbitrary URL-ish strings at
the parsing layer (nothing connects).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from warehouse.cli.main import app
from warehouse.config import get_settings
from warehouse.errors import ConfigError

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


def test_settings_errors_do_not_echo_input_values(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic shows `input_value=…`: a password typed into the wrong variable would print."""
    monkeypatch.setenv("WH_CLICKHOUSE_SECURE", CANARY)  # a password in a boolean
    monkeypatch.setenv("WH_CLICKHOUSE_PASSWORD", CANARY + "ch")
    monkeypatch.setenv("WH_KAFKA_PASSWORD", CANARY + "kafka")
    with pytest.raises(ConfigError) as info:
        get_settings()
    exc = info.value
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    assert "WH_CLICKHOUSE_SECURE" in str(exc)
    assert CANARY not in shown, shown
    assert exc.__cause__ is None and exc.__context__ is None  # the ValidationError is not chained either
    result = runner.invoke(app, ["status"])
    assert_clean_error(result, [CANARY])


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


def test_a_good_url_still_works_and_prints_without_password(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_CLICKHOUSE_URL", f"https://alice:{CANARY}%2F%23x@ch.example:8443/")
    s = get_settings()
    address = s.clickhouse_address()
    assert address is not None
    assert (address.host, address.port, address.username, address.secure) == ("ch.example", 8443, "alice", True)
    assert address.password.get_secret_value() == CANARY + "/#x"  # percent-decoded
    assert s.clickhouse_where() == "https://ch.example:8443/"
    for text in (repr(s), str(s), repr(address), str(address), s.clickhouse_where()):
        assert CANARY not in text
    # a password left out of the URL comes from WH_CLICKHOUSE_PASSWORD
    monkeypatch.setenv("WH_CLICKHOUSE_URL", "http://bob@ch.example")
    monkeypatch.setenv("WH_CLICKHOUSE_PASSWORD", CANARY)
    address = get_settings().clickhouse_address()
    assert address is not None
    assert (address.username, address.port, address.password.get_secret_value()) == ("bob", 8123, CANARY)


# -- property: arbitrary URL-ish strings around a canary password -----------------------

SPECIALS = "/#?@:% &=+[]\\\"'`\t\n\r;,<>{}|^~é€\x7f"
schemes = st.sampled_from(["http://", "https://", "", "HTTP://", "ftp://", "http:/", "http:", "//", "clickhouse://"])
users = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6) | st.sampled_from(
    ["default", "", "a:b", "u@v", "x/y"]
)
hosts = st.sampled_from(["localhost", "ch.example", "127.0.0.1", "[::1]", "", "h@x", "ho st", "[::1", "-bad-"]) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8
)
ports = st.sampled_from(["", ":8123", ":80x", ":99999", ":", ":-1", ":0", ":65535", ":8123:9"]) | st.text(
    alphabet="0123456789:x ", max_size=6
).map(lambda t: ":" + t)
tails = st.sampled_from(["", "/", "/wh", "/?x=1", "#frag", "/a/b", "?password=p", "/%2F"])


@st.composite
def canary_passwords(draw: st.DrawFn) -> str:
    """The canary with special characters inserted strictly inside it."""
    chars = list(CANARY)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(1, len(chars) - 1))
        chars.insert(at, draw(st.sampled_from(SPECIALS)))
    return "".join(chars)


@pytest.mark.property
@given(scheme=schemes, user=users, password=canary_passwords(), sep=st.sampled_from(["@", "@", "@@", ""]),
       host=hosts, port=ports, tail=tails)  # fmt: skip
def test_property_canary_never_leaks_from_url_parsing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path,
    scheme: str, user: str, password: str, sep: str, host: str, port: str, tail: str,
) -> None:  # fmt: skip
    url = f"{scheme}{user}:{password}{sep}{host}{port}{tail}"
    env = {"WH_HOME": str(tmp_path), "WH_CLICKHOUSE_URL": url}
    seen: list[str] = []
    caplog.clear()
    with mock.patch.dict(os.environ, env), caplog.at_level("DEBUG"):
        for var in ("WH_CLICKHOUSE_HOST", "WH_CLICKHOUSE_PASSWORD", "WH_KAFKA_BOOTSTRAP"):
            os.environ.pop(var, None)
        try:
            settings = get_settings()
            where = settings.clickhouse_where()
            address = settings.clickhouse_address()
            seen += [where, repr(settings), str(settings), repr(address), str(address)]
        except ConfigError as exc:
            seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    out = capsys.readouterr()
    seen += [out.out, out.err, caplog.text]
    leaked = [s for s in seen if password.lower() in s.lower() or CANARY.lower() in s.lower()]
    assert not leaked, (url, leaked)
