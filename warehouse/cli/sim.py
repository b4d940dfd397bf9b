"""`wh replay`: strategies over warehouse history through the simulator; fills back into the warehouse."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from warehouse.cli.common import console, fail, guarded, output_file, parse_pairs, progress_bar
from warehouse.config import get_settings


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _when(text: str, flag: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{flag} {text!r} is not an ISO date/time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def replay(
    strategy: str = typer.Option(..., "--strategy", "-s", help="noop | zscore | twap"),
    params: list[str] = typer.Option([], "--params", "-p", help="NAME=VALUE for the strategy (repeatable)"),
    sweep: list[str] = typer.Option([], "--sweep", help="NAME=V1,V2,… : one trader per combination (leaderboard)"),
    symbols: str = typer.Option(..., "--symbols", help="comma-separated symbols, or ALL"),
    exchange: str = typer.Option("", "--exchange", help="only this venue's ticks (needed when a symbol trades on several)"),
    since: str = typer.Option(..., "--from", help="UTC start (ISO), inclusive"),
    until: str = typer.Option(..., "--to", help="UTC end (ISO), exclusive"),
    engine: str = typer.Option("duckdb", "--engine", "-e", help="duckdb | clickhouse: where history comes from"),
    trader: str | None = typer.Option(None, "--trader", help="trader id (default: the strategy name); sweeps add -1, -2, …"),
    clock: str = typer.Option("event", "--clock", help="event | receipt: the order ticks are replayed in"),
    speed: float | None = typer.Option(None, "--speed", help="multiple of real time (default: as fast as possible)"),
    cash: float = typer.Option(1_000_000.0, "--cash", help="starting balance per trader (VCR)"),
    snapshot_every: int = typer.Option(3600, "--snapshot-every", help="seconds of event time between portfolio snapshots"),
    write_to: str = typer.Option("all", "--write-to", help="duckdb | clickhouse | all | none: where the ledger goes"),
    fills_out: Path | None = typer.Option(None, "--fills-out",
                                          help="also write the fills to this Parquet file (missing folders are created)"),
) -> None:
    """Replay history into a strategy through the simulator; orders, fills and snapshots go into wh.*."""
    import pyarrow.parquet as pq

    from warehouse.analytics import run as run_query
    from warehouse.analytics.ledger import write_ledger
    from warehouse.sim.run import simulate, summary
    from warehouse.sim.strategies import STRATEGIES
    from warehouse.sql.engines import engine_names, open_engine

    cls = STRATEGIES.get(strategy)
    if cls is None:
        raise fail(f"--strategy {strategy!r}: choose {', '.join(STRATEGIES)}")
    base = {k: _value(v) for k, v in parse_pairs(params, "--params").items()}
    axes = {k: [_value(x.strip()) for x in v.split(",") if x.strip()] for k, v in parse_pairs(sweep, "--sweep").items()}
    for k, values in axes.items():
        if not values:
            raise fail(f"--sweep {k}=: no values; give NAME=V1,V2,… (e.g. --sweep {k}=30,60,120)")
    if fills_out is not None:
        output_file(fills_out, "--fills-out")
    combos = [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())] if axes else [{}]
    name = trader or strategy
    try:
        traders = [(name if len(combos) == 1 else f"{name}-{i + 1}", cls(**{**base, **c})) for i, c in enumerate(combos)]
    except (TypeError, ValueError) as exc:
        raise fail(f"{strategy} parameters: {exc}") from None
    t0, t1 = _when(since, "--from"), _when(until, "--to")
    if t1 <= t0:
        raise fail("--to must be after --from")
    if clock not in ("event", "receipt"):
        raise fail("--clock: use event or receipt")
    targets = [] if write_to == "none" else guarded(lambda: engine_names(write_to))
    settings = get_settings()
    source = guarded(lambda: open_engine(engine, settings, read_only=True, for_replay=True))
    try:
        wanted = [s.strip() for s in symbols.split(",") if s.strip()]
        if wanted == ["ALL"]:
            wanted = sorted(set(guarded(lambda: run_query(source, "symbols", limit=100_000)).column("symbol").to_pylist()))
        if not wanted:
            raise fail("--symbols: name at least one symbol (or ALL)")
        with progress_bar() as progress:
            task = progress.add_task(f"replay {engine}", total=None, rows=0)

            def tick(stats: Any) -> None:
                progress.update(task, total=stats.expected or None, completed=stats.ticks, rows=stats.ticks)

            result = guarded(lambda: simulate(source, traders, wanted, t0, t1, clock=clock,  # type: ignore[arg-type]
                                              initial_cash=cash, snapshot_every_s=snapshot_every, speed=speed,
                                              on_batch=tick, exchange=exchange))  # fmt: skip
    finally:
        source.close()
    if result.stats.ticks == 0:
        venue = f" on {exchange}" if exchange else ""
        raise fail(f"no ticks of {', '.join(wanted)}{venue} in [{t0.isoformat()}, {t1.isoformat()}) on {engine}")
    tables = result.tables()
    for target in targets:
        eng = guarded(lambda target=target: open_engine(target, settings))  # type: ignore[misc]
        try:
            from warehouse.sql.migrate import migrate

            guarded(lambda eng=eng: migrate(eng))  # type: ignore[misc]
            guarded(lambda eng=eng: write_ledger(eng, tables))  # type: ignore[misc]
        finally:
            eng.close()
    if fills_out is not None:
        try:
            pq.write_table(tables["fills"], fills_out, compression="zstd")
        except OSError as exc:
            raise fail(f"--fills-out {str(fills_out)!r}: cannot write: {exc.strerror or exc}") from None
    st = result.stats
    console.print(f"replayed {st.ticks:,} ticks ({st.quotes:,} quotes, {st.trades:,} trades) of {len(wanted)} "
                  f"symbol(s) from {engine}, {clock} clock")  # fmt: skip
    t = Table(title="simulation", title_justify="left")
    for col in ("trader", "strategy", "orders", "fills", "fees", "slippage", "P&L", "max drawdown", "rejects"):
        t.add_column(col, justify="left" if col in ("trader", "strategy", "rejects") else "right")
    for row in summary(result):
        rejects = ", ".join(f"{k}={v}" for k, v in row["rejects"].items())  # type: ignore[attr-defined]
        if row["halted"]:
            rejects = (rejects + "; " if rejects else "") + f"HALTED: {row['halted']}"
        t.add_row(str(row["trader"]), str(row["strategy"]), f"{row['orders']:,}", f"{row['fills']:,}",
                  f"{row['fees']:,.2f}", f"{row['slippage']:,.2f}", f"{row['pnl']:,.2f}",
                  f"{row['max_drawdown']:.2%}", rejects)  # fmt: skip
    console.print(t)
    if targets:
        console.print(f"ledger written to {', '.join(targets)}: try `wh query leaderboard` or "
                      f"`wh query equity_curve {traders[0][0]}`")  # fmt: skip
    if fills_out is not None:
        console.print(f"fills: {fills_out} ({tables['fills'].num_rows:,} rows)")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
