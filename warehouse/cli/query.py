"""Named analytics: `wh query` (queries/*.sql on one engine) and `wh refresh` (materialized days)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from warehouse.cli.common import (
    EnginesChoice,
    Format,
    Materialized,
    QueryEngineChoice,
    console,
    fail,
    parse_pairs,
    progress_bar,
)
from warehouse.cli.output import check_output, emit
from warehouse.config import get_settings


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command()(refresh)


def _list_queries(engine: str | None = None) -> None:
    from warehouse.sql import queries

    for q in queries.list_queries(engine):
        console.print(Text.assemble((q.name, "bold"), f" — {q.description}"))
        if q.params:
            console.print("    " + ", ".join(p.describe() for p in q.params))


def query(
    name: str = typer.Argument(None, help="query name (see --list)"),
    args: list[str] = typer.Argument(None, help="values of the query's required parameters, in order (e.g. a symbol)"),
    list_: bool = typer.Option(False, "--list", help="list the named queries and their parameters"),
    engine: QueryEngineChoice = typer.Option(
        QueryEngineChoice.duckdb, "--engine", "-e", help="where it runs (questdb: the files in queries/questdb/)"
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for any parameter"),
    limit: int | None = typer.Option(None, "--limit", help="rows (newest) to return; 0 = all; default: the query's"),
    window: int | None = typer.Option(None, "--window", help="rolling window in rows (zscore, vwap_rolling)"),
    interval: int | None = typer.Option(None, "--interval", help="bar / point interval in seconds"),
    since: str | None = typer.Option(None, "--since", help="UTC start (ISO), inclusive"),
    until: str | None = typer.Option(None, "--until", help="UTC end (ISO), exclusive"),
    at: str | None = typer.Option(None, "--at", help="UTC time of a leaderboard / allocation (ISO)"),
    exchange: str | None = typer.Option(
        None, "--exchange", help="venue of the symbol (needed when it trades on several)"
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="how to print the result"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="write the result to this file (missing folders are created)"
    ),
) -> None:
    """Run a named query: `wh query zscore BTCUSDT`, `wh query bars ETHUSDT --interval 300`, `wh query --list`."""
    from warehouse import analytics
    from warehouse.sql import queries
    from warehouse.sql.engines import open_engine

    if list_ or name is None:
        _list_queries(engine.value if engine == QueryEngineChoice.questdb else None)
        return
    check_output(fmt, out)
    q = queries.load(name, engine=engine.value)
    declared = {p.name for p in q.params}
    required = [p.name for p in q.params if p.default is None]
    positional = list(args or [])
    if len(positional) > len(required):
        raise fail(f"{name} takes {len(required)} positional value(s) ({', '.join(required) or 'none'}); "
                   f"got {len(positional)}: use --param NAME=VALUE for the others")  # fmt: skip
    values: dict[str, Any] = dict(zip(required, positional, strict=False))
    options = {"limit": limit, "window": window, "interval": interval, "since": since, "until": until, "at": at,
               "exchange": exchange}  # fmt: skip
    for key, value in options.items():
        if value is None:
            continue
        if key not in declared:
            raise fail(f"--{key}: {name} has no parameter {key} (it takes {', '.join(sorted(declared)) or 'none'})")
        values[key] = analytics.ALL_ROWS if key == "limit" and value == 0 else value
    values.update(parse_pairs(param, "--param"))
    missing = [p for p in required if p not in values]
    if missing:
        raise fail(f"{name} needs {', '.join(missing)}: wh query {name} {' '.join(m.upper() for m in required)}")
    settings = get_settings()
    eng = open_engine(engine.value, settings, read_only=True)
    try:
        if name == "zscore":
            table = analytics.zscore(eng, values.pop("symbol"), prefer_quote=settings.preferred_quote, **values)
        else:
            table = analytics.run(eng, name, prefer_quote=settings.preferred_quote, **values)
    finally:
        eng.close()
    shown = ", ".join(f"{k}={v}" for k, v in values.items() if k in required)
    emit(table, fmt, f"{name} {shown} on {engine.value}".replace("  ", " "), out)


def refresh(
    tables: list[Materialized] = typer.Argument(None, help="which tables to rebuild (default: all)"),
    day: list[str] = typer.Option(
        [], "--day", "-d", help="UTC day (YYYY-MM-DD) to rebuild; default: every day with data"
    ),
    engine: EnginesChoice = typer.Option(EnginesChoice.all, "--engine", "-e", help="which engines"),
) -> None:
    """Rebuild materialized analytics per UTC day (1-minute bars, daily leaderboard); re-running a day replaces it."""
    from datetime import date as date_

    from warehouse.analytics import materialize
    from warehouse.sql.engines import engine_names, open_engine
    from warehouse.sql.migrate import migrate as run_migrations

    names = [t.value for t in tables] if tables else list(materialize.TARGETS)
    try:
        days = [date_.fromisoformat(d) for d in day]
    except ValueError as exc:
        raise fail(f"--day: {exc} (use YYYY-MM-DD)") from None
    settings = get_settings()
    for ename in engine_names(engine.value):
        eng = open_engine(ename, settings)
        try:
            run_migrations(eng)
            todo = {n: days for n in names} if days else {
                n: d for n, d in materialize.activity_days(eng).items() if n in names}  # fmt: skip
            with progress_bar() as progress:
                for n, ds in todo.items():
                    task = progress.add_task(f"{ename} {n}", total=len(ds), rows=0)
                    rows = 0
                    for d in ds:
                        rows += materialize.refresh(eng, n, d)
                        progress.update(task, advance=1, rows=rows)
                    console.print(f"{ename}: {n}: {len(ds)} day(s) rebuilt, {rows:,} rows")
        finally:
            eng.close()
