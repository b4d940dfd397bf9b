"""`wh sql` (analysts' read-only SQL) and `wh plot` (PNG charts of the named queries)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import typer

from warehouse.cli.common import Dialect, EngineChoice, Format, QueryEngineChoice, console, err, fail, output_file
from warehouse.cli.output import check_output, emit
from warehouse.config import get_settings

plot_app = typer.Typer(help="PNG charts: `wh plot zscore SYMBOL`, `wh plot equity TRADER`.", no_args_is_help=True)


def sql(
    statement: str = typer.Argument(..., help="one SELECT (ClickHouse dialect by default; QuestDB's own on questdb)"),
    dialect: Dialect | None = typer.Option(
        None, "--dialect", help="the dialect the SQL is written in (default clickhouse; not with --engine questdb)"
    ),
    engine: QueryEngineChoice = typer.Option(
        QueryEngineChoice.duckdb, "--engine", "-e", help="where it runs (questdb: as its read-only PG user)"
    ),
    max_rows: int = typer.Option(100_000, "--max-rows", help="refuse results longer than this"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds before the query is stopped"),
    fmt: Format = typer.Option(Format.table, "--format", help="how to print the result"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="write the result to this file (missing folders are created)"
    ),
) -> None:
    """Run one read-only query over the wh tables: `wh sql "SELECT symbol, count() FROM wh.trades GROUP BY symbol"`."""
    from warehouse.sql import readonly

    if max_rows < 1 or timeout <= 0:
        raise fail("--max-rows and --timeout must be positive")
    if dialect is not None and engine == QueryEngineChoice.questdb:
        raise fail("--dialect is for duckdb and clickhouse: QuestDB runs its own SQL (SAMPLE BY, LATEST ON, …)")
    check_output(fmt, out)
    written = (dialect or Dialect.clickhouse).value if engine != QueryEngineChoice.questdb else "questdb"
    table = readonly.run(statement, dialect=written, engine=engine.value, settings=get_settings(),
                         max_rows=max_rows, timeout=timeout)  # fmt: skip
    emit(table, fmt, f"{engine.value} ({written} SQL)", out)


def _out_path(out: Path | None, kind: str, key: str) -> Path:
    if out is not None:
        return output_file(out)
    folder = get_settings().home / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.png"


@plot_app.command("zscore")
def plot_zscore(
    symbol: str = typer.Argument(..., help="symbol with quotes"),
    window: int = typer.Option(60, "--window", help="rolling window in quotes"),
    limit: int = typer.Option(2000, "--limit", help="newest quotes to draw"),
    exchange: str = typer.Option("", "--exchange", help="venue of the symbol (needed when it trades on several)"),
    engine: EngineChoice = typer.Option(EngineChoice.duckdb, "--engine", "-e", help="where it runs"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="PNG path (default: $WH_HOME/plots/; missing folders are created)"
    ),
) -> None:
    """Bid with its rolling mean and ±2σ band, and the z-score with its ±2 lines."""
    from warehouse import analytics
    from warehouse.analytics import charts
    from warehouse.sql.engines import open_engine

    path = _out_path(out, "zscore", f"{exchange}_{symbol}" if exchange else symbol)
    eng = open_engine(engine.value, get_settings(), read_only=True)
    try:
        table = analytics.zscore(eng, symbol, window=window, limit=limit, exchange=exchange)
    finally:
        eng.close()
    _save(lambda: charts.zscore_chart(table, symbol=symbol, window=window, path=path))
    console.print(str(path))


@plot_app.command("equity")
def plot_equity(
    trader: str = typer.Argument(..., help="trader id (wh.traders)"),
    interval: int | None = typer.Option(
        None, "--interval", min=1, help="seconds between points (default: ~300 points over the trader's span)"
    ),
    engine: EngineChoice = typer.Option(EngineChoice.duckdb, "--engine", "-e", help="where it runs"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="PNG path (default: $WH_HOME/plots/; missing folders are created)"
    ),
) -> None:
    """NAV over time with its running peak, and the drawdown below it."""
    from warehouse import analytics
    from warehouse.analytics import charts
    from warehouse.sql.engines import open_engine

    path = _out_path(out, "equity", trader)
    eng = open_engine(engine.value, get_settings(), read_only=True)
    try:
        step = interval or analytics.equity_interval(eng, trader)
        table = analytics.run(eng, "equity_curve", trader=trader, interval=step)
    finally:
        eng.close()
    if table.num_rows == 0:
        raise fail(f"no equity curve for trader {trader!r}: no fills (see wh query leaderboard)")
    _save(lambda: charts.equity_chart(table, trader=trader, path=path, interval=step))
    err.print(f"{table.num_rows:,} point{'s' if table.num_rows != 1 else ''}, every {step:,} s")
    console.print(str(path))  # stdout: the path alone, for scripts


def _save(draw: Callable[[], object]) -> None:
    try:
        draw()
    except OSError as exc:
        raise fail(f"cannot write the chart: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
    app.add_typer(plot_app, name="plot")
