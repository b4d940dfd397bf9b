"""`wh sql` (analysts' read-only SQL) and `wh plot` (PNG charts of the named queries)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer

from warehouse.cli.common import console, err, fail, guarded, output_file
from warehouse.config import get_settings

plot_app = typer.Typer(help="PNG charts: `wh plot zscore SYMBOL`, `wh plot equity TRADER`.", no_args_is_help=True)


def sql(
    statement: str = typer.Argument(..., help="one SELECT (ClickHouse dialect by default)"),
    dialect: str = typer.Option("clickhouse", "--dialect", help="clickhouse | duckdb: the dialect the SQL is written in"),
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse: where it runs"),
    max_rows: int = typer.Option(100_000, "--max-rows", help="refuse results longer than this"),
    timeout: float = typer.Option(60.0, "--timeout", help="seconds before the query is stopped"),
    fmt: str = typer.Option("table", "--format", help="table | csv | json | parquet"),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the result to this file (missing folders are created)"),
) -> None:
    """Run one read-only query over the wh tables: `wh sql "SELECT symbol, count() FROM wh.trades GROUP BY symbol"`."""
    from warehouse.cli.main import _emit, check_output
    from warehouse.sql import readonly

    if max_rows < 1 or timeout <= 0:
        raise fail("--max-rows and --timeout must be positive")
    check_output(fmt, out)
    table = guarded(lambda: readonly.run(statement, dialect=dialect, engine=engine, settings=get_settings(),
                                         max_rows=max_rows, timeout=timeout))  # fmt: skip
    if fmt == "csv":
        table = csv_ready(table)
    try:
        _emit(table, fmt, f"{engine} ({dialect} SQL)", out)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise fail(f"cannot write the result as {fmt}: {exc}; try --format json or parquet") from None


def csv_ready(table: pa.Table) -> pa.Table:
    """CSV has no nested values: list, map and struct columns become JSON text (`[1, 2]`, `{"k": 1}`)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            values = [None if v is None else json.dumps(_plain(v, field.type), default=_json_default)
                      for v in table.column(i).to_pylist()]  # fmt: skip
            table = table.set_column(i, pa.field(field.name, pa.string()), pa.array(values, pa.string()))
    return table


def _plain(value: Any, type_: pa.DataType) -> Any:
    """A nested Arrow value as JSON-ready Python: maps as objects (keys as text), structs as objects."""
    if value is None:
        return None
    if pa.types.is_map(type_):
        return {_key(k, type_.key_type): _plain(v, type_.item_type) for k, v in value}
    if pa.types.is_struct(type_):
        return {type_.field(j).name: _plain(value.get(type_.field(j).name), type_.field(j).type)
                for j in range(type_.num_fields)}  # fmt: skip
    if isinstance(type_, (pa.ListType, pa.LargeListType, pa.FixedSizeListType)):
        return [_plain(v, type_.value_type) for v in value]
    return value


def _key(key: Any, type_: pa.DataType) -> str:
    if isinstance(key, (str, bytes)):
        return _json_default(key)
    return json.dumps(_plain(key, type_), default=_json_default)


def _json_default(value: Any) -> str:
    """Text for what JSON has no type for: times (ISO 8601), bytes (UTF-8), decimals and durations."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


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
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse"),
    out: Path | None = typer.Option(None, "--out", "-o", help="PNG path (default: $WH_HOME/plots/; missing folders are created)"),
) -> None:
    """Bid with its rolling mean and ±2σ band, and the z-score with its ±2 lines."""
    from warehouse import analytics
    from warehouse.analytics import charts
    from warehouse.sql.engines import open_engine

    path = _out_path(out, "zscore", f"{exchange}_{symbol}" if exchange else symbol)
    eng = guarded(lambda: open_engine(engine, get_settings(), read_only=True))
    try:
        table = guarded(lambda: analytics.zscore(eng, symbol, window=window, limit=limit, exchange=exchange))
    finally:
        eng.close()
    _save(lambda: charts.zscore_chart(table, symbol=symbol, window=window, path=path))
    console.print(str(path))


@plot_app.command("equity")
def plot_equity(
    trader: str = typer.Argument(..., help="trader id (wh.traders)"),
    interval: int | None = typer.Option(None, "--interval", min=1,
                                        help="seconds between points (default: ~300 points over the trader's span)"),
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse"),
    out: Path | None = typer.Option(None, "--out", "-o", help="PNG path (default: $WH_HOME/plots/; missing folders are created)"),
) -> None:
    """NAV over time with its running peak, and the drawdown below it."""
    from warehouse import analytics
    from warehouse.analytics import charts
    from warehouse.sql.engines import open_engine

    path = _out_path(out, "equity", trader)
    eng = guarded(lambda: open_engine(engine, get_settings(), read_only=True))
    try:
        step = interval or guarded(lambda: analytics.equity_interval(eng, trader))
        table = guarded(lambda: analytics.run(eng, "equity_curve", trader=trader, interval=step))
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
