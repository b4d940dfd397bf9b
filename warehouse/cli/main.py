"""`wh`: the app and its commands, one module per area; this module only assembles them.

    data.py      import, generate, demo, migrate
    query.py     query, refresh
    analysis.py  sql, plot …
    sim.py       replay
    stream.py    broker, feed, ingest, status
    capture.py   capture (an exchange's WebSocket streams → Kafka)
    servers.py   servers
    ui.py        ui (Dagster)
    bench.py     bench …  (the benchmarks themselves are warehouse.bench)
    webhooks.py  webhooks serve (order events in)

The command modules import common.py (consoles, errors, choices) and output.py (results),
never this module or each other. Errors: see common.py (`WarehouseGroup` is the one handler).
"""

from __future__ import annotations

import typer

from warehouse.cli import analysis, bench, capture, data, query, servers, sim, stream, ui, webhooks
from warehouse.cli.common import WarehouseGroup
from warehouse.config import get_settings

app = typer.Typer(help="wh — market-data warehouse: ticks in, sanitized, stored, analysed in SQL.", cls=WarehouseGroup,
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)  # fmt: skip


@app.callback()
def _check_settings() -> None:
    """Bad WH_* settings end every command with one redacted `Error:` line (no traceback,
    no secret: see warehouse/config.py) before it starts."""
    get_settings()


data.register(app)
query.register(app)
analysis.register(app)
sim.register(app)
stream.register(app)
capture.register(app)
servers.register(app)
ui.register(app)
app.add_typer(bench.app, name="bench")
app.add_typer(webhooks.app, name="webhooks")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # `python -m warehouse.cli.main …`
    main()
