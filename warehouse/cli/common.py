"""What every `wh` command shares: consoles, the error convention, option parsing, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from warehouse.errors import WarehouseError

# In a pipe rich assumes 80 columns and cuts table cells (trader ids, prices) with "…"
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(1)


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except WarehouseError as exc:
        raise fail(str(exc).replace("[", "\\[")) from None


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
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:>12,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
