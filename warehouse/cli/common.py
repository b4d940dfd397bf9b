"""What every `wh` command shares: consoles, the error convention, the choices, option parsing,
progress. (Printing results — tables, CSV, JSON, Parquet, reports — is in output.py.)

Errors: a command refuses bad input with `raise fail("…")` (one `Error: …` line, exit 1);
a library call's `WarehouseError` is left to reach `WarehouseGroup`, the app's one handler,
which prints it the same way (`wh import` alone reports a bad file and goes on to the next).
Choices are `StrEnum`s, so `--help` lists them and a bad value is click's usage error (exit 2).

Text that comes from files, feeds or the command line (a header, a symbol, a path, an
exception's message) is printed literally: both consoles have markup, highlighting and
emoji codes off, so `[bold]` and `:x:` stay as typed, and rich's highlighter (quadratic on
a long unbroken run: 15 s for a 40 KB header line) never sees it. Styling, where wanted, is
given as `rich.text.Text` styles. Error messages and table cells are clipped (`shorten`,
`clip`) so a 50 MB header line cannot become a 50 MB error line.
"""

from __future__ import annotations

import logging
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text
from typer.core import TyperGroup

from warehouse.errors import WarehouseError

# clickhouse-connect logs a warning ("Unexpected Http Driver Exception") before raising what
# the engine layer translates: the CLI prints the translated error once, not both.
logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())
_LITERAL: dict[str, Any] = {"markup": False, "highlight": False, "emoji": False}
# In a pipe rich assumes 80 columns and cuts table cells (trader ids, prices) with "…"
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200, **_LITERAL)
err = Console(stderr=True, soft_wrap=True, **_LITERAL)


class WireEncoding(StrEnum):
    """`wh feed --encoding`: one JSON tick per message, or Arrow batches of one instrument."""

    json = "json"
    arrow = "arrow"


class EngineChoice(StrEnum):
    """`--engine` of the commands that read one engine."""

    duckdb = "duckdb"
    clickhouse = "clickhouse"


class QueryEngineChoice(StrEnum):
    """`wh query --engine`: QuestDB runs its own files (queries/questdb/)."""

    duckdb = "duckdb"
    clickhouse = "clickhouse"
    questdb = "questdb"


class EnginesChoice(StrEnum):
    """`--engine` of the commands that write: one engine or all of them."""

    duckdb = "duckdb"
    clickhouse = "clickhouse"
    all = "all"


class StoreChoice(StrEnum):
    """`--engine` of the commands that store ticks or migrate: the cold engines, QuestDB (the hot
    tier, by name only: a server that may not be configured) or all (DuckDB and ClickHouse)."""

    duckdb = "duckdb"
    clickhouse = "clickhouse"
    questdb = "questdb"
    all = "all"


class WriteTo(StrEnum):
    """`wh replay --write-to`: where the ledger goes."""

    duckdb = "duckdb"
    clickhouse = "clickhouse"
    all = "all"
    none = "none"


class Format(StrEnum):
    """`--format` of a result (output.py)."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class ImportFormat(StrEnum):
    """`wh import --format`: what the files are."""

    tardis = "tardis"
    csv = "csv"
    parquet = "parquet"


class TickKind(StrEnum):
    """`wh import --kind`."""

    quotes = "quotes"
    trades = "trades"


class TsUnit(StrEnum):
    """`wh import --ts-unit`: unit of numeric timestamps."""

    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


class Clock(StrEnum):
    """`wh replay --clock`: the order ticks are replayed in."""

    event = "event"
    receipt = "receipt"


class Dialect(StrEnum):
    """`wh sql --dialect`: the dialect the SQL is written in."""

    clickhouse = "clickhouse"
    duckdb = "duckdb"


class Strategy(StrEnum):
    """`wh replay --strategy` (warehouse.sim.strategies.STRATEGIES; a unit test keeps them equal)."""

    noop = "noop"
    zscore = "zscore"
    twap = "twap"


class Materialized(StrEnum):
    """`wh refresh` tables (warehouse.analytics.materialize.TARGETS; a unit test keeps them equal)."""

    bars_1m = "bars_1m"
    leaderboard_daily = "leaderboard_daily"


MAX_RUN = 200  # characters of one unbroken run (a header without separators, one value)
MAX_MESSAGE = 1_500  # characters of a whole error message
MAX_CELL = 300  # characters of one table cell


def clip(text: str, limit: int = MAX_CELL) -> str:
    """`text`, or its first `limit` characters followed by "… (N bytes)"."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text.encode('utf-8', 'replace')):,} bytes)"


_RUN = re.compile(rf"[^\s,;()'\"]{{{MAX_RUN + 1},}}")  # a run ends at a space or punctuation


def shorten(message: str) -> str:
    """An error message fit for one line: long unbroken runs clipped to MAX_RUN characters,
    then the middle cut when still longer than MAX_MESSAGE — the end (how to fix it) is kept."""
    if len(message) <= MAX_RUN:
        return message
    message = _RUN.sub(lambda m: clip(m.group(0), MAX_RUN), message)
    if len(message) > MAX_MESSAGE:
        head, tail = MAX_MESSAGE * 2 // 3, MAX_MESSAGE // 3
        cut = message[head:-tail]
        message = f"{message[:head]} … ({len(cut.encode('utf-8', 'replace')):,} bytes cut) … {message[-tail:]}"
    return message


def print_error(message: object) -> None:
    """The one place that prints `Error: …` (literal text, clipped)."""
    line = Text("Error:", style="bold red")
    line.append(" " + shorten(str(message)))
    err.print(line, **_LITERAL)


def fail(message: object) -> typer.Exit:
    print_error(message)
    return typer.Exit(1)


class WarehouseGroup(TyperGroup):
    """The `wh` command group and the app's one error handler: a `WarehouseError` from any
    command (or sub-command: `wh bench …`, `wh plot …`) becomes one `Error: …` line and exit 1,
    never a traceback. Commands let library errors through to here instead of catching them."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WarehouseError as exc:
            raise fail(exc) from None


def output_file(path: Path, flag: str = "--out") -> Path:
    """A file path a command will write: refuse a directory, create missing parent folders."""
    if path.is_dir():
        raise fail(f"{flag} {str(path)!r} is a directory: give a file path (e.g. {str(path / 'result')!r} "
                   "with the format's extension)")  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{flag} {str(path)!r}: cannot create its folder: {exc.strerror or exc}") from None
    return path


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise fail(f"{flag} {item!r}: expected FIELD=VALUE")
        out[k.strip()] = v
    return out


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%", markup=False),
        TextColumn("{task.fields[rows]:>12,} rows", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
