"""Smoke: every command and sub-command answers `--help`, and its choices are listed there."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from warehouse.cli.main import app

runner = CliRunner()
# command → choices its help must list (an option whose values are a StrEnum)
COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("import",): ["<tardis|csv|parquet>", "<quotes|trades>", "<s|ms|us|ns>", "<duckdb|clickhouse|questdb|all>"],
    ("generate",): ["<duckdb|clickhouse|questdb|all>"],
    ("migrate",): ["<duckdb|clickhouse|questdb|all>"],
    ("demo",): [],
    ("query",): ["<duckdb|clickhouse|questdb>", "<table|csv|json|parquet>"],
    ("refresh",): ["bars_1m|leaderboard_daily", "<duckdb|clickhouse|all>"],
    ("sql",): ["<clickhouse|duckdb>", "<duckdb|clickhouse|questdb>", "<table|csv|json|parquet>"],
    ("plot", "zscore"): ["<duckdb|clickhouse>"],
    ("plot", "equity"): ["<duckdb|clickhouse>"],
    ("replay",): ["<noop|zscore|twap>", "<event|receipt>", "<duckdb|clickhouse|all|none>"],
    ("broker",): [],
    ("feed",): ["<json|arrow>"],
    ("ingest",): [],
    ("status",): [],
    ("servers",): [],
    ("ui",): [],
    ("bench", "import"): [],
    ("bench", "zscore"): [],
    ("bench", "ingest"): [],
    ("bench", "freshness"): [],
    ("bench", "questdb"): [],
    ("bench", "analytics"): [],
    ("bench", "replay"): ["<duckdb|clickhouse>"],
    ("capture",): [],
    ("webhooks", "serve"): [],
    ("webhooks", "ingest"): ["<duckdb|clickhouse|all>"],
}


def help_text(*args: str) -> str:
    r = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_lists_the_choices(command: tuple[str, ...]) -> None:
    text = help_text(*command)
    for choice in COMMANDS[command]:
        assert choice in text, (command, choice)


def test_every_command_is_covered_above() -> None:
    import typer.main

    def paths(group: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for name, cmd in group.commands.items():  # type: ignore[attr-defined]
            out |= paths(cmd, (*prefix, name)) if hasattr(cmd, "commands") else {(*prefix, name)}
        return out

    assert paths(typer.main.get_command(app)) == set(COMMANDS)


def test_a_bad_choice_is_a_usage_error_naming_the_values() -> None:
    r = runner.invoke(app, ["query", "zscore", "BTCUSDT", "--format", "xml"])
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.output and "parquet" in r.output, r.output


def test_live_edges_document_real_exchange_use() -> None:
    """Which exchanges, which endpoints, which keys (none for public market data)."""
    text = " ".join(help_text("capture").split())
    for words in ("binanceusdm", "wss://fstream.binance.com", "binance (spot", "needs no API key",
                  "local exchange", "not tried from here", "min(cap, base·2^n) + uniform(0, jitter)"):  # fmt: skip
        assert words in text, words
    text = " ".join(help_text("webhooks", "serve").split())
    for words in ("WH_WEBHOOK_SECRET", "HMAC-SHA256", "X-WH-Signature", "wh replay --webhook URL",
                  "no exchange API key"):  # fmt: skip
        assert words in text, words
