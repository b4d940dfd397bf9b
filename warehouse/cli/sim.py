"""`wh replay`: strategies over warehouse history through the simulator; fills back into the warehouse."""

from __future__ import annotations

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
    webhook: str | None = typer.Option(
        None,
        "--webhook",
        help="also POST every order's final state and every fill as signed events to this URL "
        "(WH_WEBHOOK_SECRET; retried with backoff and jitter), as an execution venue would",
    ),
) -> None:
    """Replay history into a strategy through the simulator; orders, fills and snapshots go into wh.*."""
    import pyarrow.parquet as pq

    from warehouse.errors import SimulationError
    from warehouse.sim.run import summary
    from warehouse.sim.session import make_traders, parse_value, replay_session
    from warehouse.sql.engines import engine_names

    base = {k: parse_value(v) for k, v in parse_pairs(params, "--params").items()}
    axes = {
        k: [parse_value(x.strip()) for x in v.split(",") if x.strip()] for k, v in parse_pairs(sweep, "--sweep").items()
    }
    if fills_out is not None:
        output_file(fills_out, "--fills-out")
    secret = get_settings().webhook.secret
    if webhook is not None:
        if not webhook.startswith(("http://", "https://")):
            raise fail(f"--webhook {webhook!r}: an http:// or https:// URL")
        if secret is None or not secret.get_secret_value():
            raise fail("--webhook: set WH_WEBHOOK_SECRET (the key the receiver verifies events with)")
    try:
        traders = make_traders(strategy.value, base, axes, trader)
    except SimulationError as exc:
        raise fail(str(exc).replace("sweep ", "--sweep ", 1)) from None
    t0, t1 = _when(since, "--from"), _when(until, "--to")
    if t1 <= t0:
        raise fail("--to must be after --from")
    targets = [] if write_to == WriteTo.none else engine_names(write_to.value)
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    if not wanted:
        raise fail("--symbols: name at least one symbol (or ALL)")
    with progress_bar() as progress:
        task = progress.add_task(f"replay {engine.value}", total=None, rows=0)

        def tick(stats: Any) -> None:
            progress.update(task, total=stats.expected or None, completed=stats.ticks, rows=stats.ticks)

        try:
            result, tables = replay_session(get_settings(), traders, wanted, t0, t1, source=engine.value,
                                            write_to=targets, clock=clock.value, cash=cash,
                                            snapshot_every_s=snapshot_every, speed=speed, exchange=exchange,
                                            on_batch=tick)  # fmt: skip
        except SimulationError as exc:
            if str(exc).startswith("no ticks of"):
                raise fail(str(exc)) from None
            raise
    if fills_out is not None:
        try:
            pq.write_table(tables["fills"], fills_out, compression="zstd")
        except OSError as exc:
            raise fail(f"--fills-out {str(fills_out)!r}: cannot write: {exc.strerror or exc}") from None
    st = result.stats
    what = "every symbol" if wanted == ["ALL"] else f"{len(wanted)} symbol(s)"
    console.print(f"replayed {st.ticks:,} ticks ({st.quotes:,} quotes, {st.trades:,} trades) of {what} "
                  f"from {engine.value}, {clock.value} clock")  # fmt: skip
    print_simulation(summary(result))
    if targets:
        console.print(f"ledger written to {', '.join(targets)}: try `wh query leaderboard` or "
                      f"`wh query equity_curve {traders[0][0]}`")  # fmt: skip
    if fills_out is not None:
        console.print(f"fills: {fills_out} ({tables['fills'].num_rows:,} rows)")
    if webhook is not None and secret is not None:
        from warehouse.config import redact_url
        from warehouse.webhooks.ledger import events, send

        items = events(tables)
        sent = send(webhook, secret.get_secret_value().encode(), items)
        console.print(f"webhooks to {redact_url(webhook)}: {len(items):,} events — {sent.sent:,} accepted, {sent.duplicates:,} "
                      f"duplicates, {sent.failed:,} failed, {sent.retries:,} retries")  # fmt: skip
        if sent.failed:
            raise fail(f"--webhook: {sent.failed:,} events were not delivered ({sent.errors})")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
