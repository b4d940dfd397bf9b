"""Secrets in settings never reach a message, a traceback, a log or the terminal.

Here the settings layer: parsing, redaction, errors without input values; the property test
throws arbitrary URL-ish strings at it (nothing connects). What every command prints with
such settings is tests/cli/test_secrets.py.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse.config import get_settings
from warehouse.errors import ConfigError

CANARY = "Kq7Zv4XwCanary"


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
hosts = st.sampled_from(
    ["localhost", "ch.example", "127.0.0.1", "[::1]", "", "h@x", "ho st", "[::1", "-bad-"]
) | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
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


def test_passwords_never_print(monkeypatch) -> None:
    from warehouse.config import ClickHouseSettings, Settings

    s = Settings(clickhouse=ClickHouseSettings(url="https://alice:s3cret@ch.example:8443/"))
    assert "s3cret" not in s.clickhouse_where() and "s3cret" not in repr(s)
    assert s.clickhouse_where() == "https://ch.example:8443/"
