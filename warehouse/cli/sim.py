"""`wh replay`: strategies over warehouse history through the simulator; fills back into the warehouse."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from warehouse.cli.common import (
    Clock,
    EngineChoice,
    Strategy,
    WriteTo,
    console,
    fail,
    output_file,
    parse_pairs,
    progress_bar,
)
from warehouse.cli.output import print_simulation
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
    strategy: Strategy = typer.Option(..., "--strategy", "-s", help="the strategy class (warehouse/sim/strategies.py)"),
    params: list[str] = typer.Option([], "--params", "-p", help="NAME=VALUE for the strategy (repeatable)"),
    sweep: list[str] = typer.Option([], "--sweep", help="NAME=V1,V2,… : one trader per combination (leaderboard)"),
    symbols: str = typer.Option(..., "--symbols", help="comma-separated symbols, or ALL"),
    exchange: str = typer.Option(
        "", "--exchange", help="only this venue's ticks (needed when a symbol trades on several)"
    ),
    since: str = typer.Option(..., "--from", help="UTC start (ISO), inclusive"),
    until: str = typer.Option(..., "--to", help="UTC end (ISO), exclusive"),
    engine: EngineChoice = typer.Option(EngineChoice.duckdb, "--engine", "-e", help="where history comes from"),
    trader: str | None = typer.Option(
        None, "--trader", help="trader id (default: the strategy name); sweeps add -1, -2, …"
    ),
    clock: Clock = typer.Option(Clock.event, "--clock", help="the order ticks are replayed in"),
    speed: float | None = typer.Option(None, "--speed", help="multiple of real time (default: as fast as possible)"),
    cash: float = typer.Option(1_000_000.0, "--cash", help="starting balance per trader (VCR)"),
    snapshot_every: int = typer.Option(
        3600, "--snapshot-every", help="seconds of event time between portfolio snapshots"
    ),
    write_to: WriteTo = typer.Option(WriteTo.all, "--write-to", help="where the ledger goes"),
    fills_out: Path | None = typer.Option(
        None, "--fills-out", help="also write the fills to this Parquet file (missing folders are created)"
    ),
) -> None:
    """Replay history into a strategy through the simulator; orders, fills and snapshots go into wh.*."""
    import pyarrow.parquet as pq

    from warehouse.analytics import run as run_query
    from warehouse.analytics.ledger import write_ledger
    from warehouse.sim.run import simulate, summary
    from warehouse.sim.strategies import STRATEGIES
    from warehouse.sql.engines import engine_names, open_engine
    from warehouse.sql.migrate import migrate

    cls = STRATEGIES[strategy.value]
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
        traders = [
            (name if len(combos) == 1 else f"{name}-{i + 1}", cls(**{**base, **c})) for i, c in enumerate(combos)
        ]
    except (TypeError, ValueError) as exc:
        raise fail(f"{strategy.value} parameters: {exc}") from None
    t0, t1 = _when(since, "--from"), _when(until, "--to")
    if t1 <= t0:
        raise fail("--to must be after --from")
    targets = [] if write_to == WriteTo.none else engine_names(write_to.value)
    settings = get_settings()
    source = open_engine(engine.value, settings, read_only=True, for_replay=True)
    try:
        wanted = [s.strip() for s in symbols.split(",") if s.strip()]
        if wanted == ["ALL"]:
            wanted = sorted(set(run_query(source, "symbols", limit=100_000).column("symbol").to_pylist()))
        if not wanted:
            raise fail("--symbols: name at least one symbol (or ALL)")
        with progress_bar() as progress:
            task = progress.add_task(f"replay {engine.value}", total=None, rows=0)

            def tick(stats: Any) -> None:
                progress.update(task, total=stats.expected or None, completed=stats.ticks, rows=stats.ticks)

            result = simulate(source, traders, wanted, t0, t1, clock=clock.value, initial_cash=cash,
                              snapshot_every_s=snapshot_every, speed=speed, on_batch=tick, exchange=exchange)  # fmt: skip
    finally:
        source.close()
    if result.stats.ticks == 0:
        venue = f" on {exchange}" if exchange else ""
        raise fail(f"no ticks of {', '.join(wanted)}{venue} in [{t0.isoformat()}, {t1.isoformat()}) on {engine.value}")
    tables = result.tables()
    for target in targets:
        eng = open_engine(target, settings)
        try:
            migrate(eng)
            write_ledger(eng, tables)
        finally:
            eng.close()
    if fills_out is not None:
        try:
            pq.write_table(tables["fills"], fills_out, compression="zstd")
        except OSError as exc:
            raise fail(f"--fills-out {str(fills_out)!r}: cannot write: {exc.strerror or exc}") from None
    st = result.stats
    console.print(f"replayed {st.ticks:,} ticks ({st.quotes:,} quotes, {st.trades:,} trades) of {len(wanted)} "
                  f"symbol(s) from {engine.value}, {clock.value} clock")  # fmt: skip
    print_simulation(summary(result))
    if targets:
        console.print(f"ledger written to {', '.join(targets)}: try `wh query leaderboard` or "
                      f"`wh query equity_curve {traders[0][0]}`")  # fmt: skip
    if fills_out is not None:
        console.print(f"fills: {fills_out} ({tables['fills'].num_rows:,} rows)")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
