"""`wh webhooks serve`: the order-event receiver (warehouse/webhooks) under uvicorn."""

from __future__ import annotations

import typer

from warehouse.cli.common import EnginesChoice, console, fail
from warehouse.config import get_settings

app = typer.Typer(help="Order-lifecycle webhooks (HMAC-signed events from an execution venue).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="address to listen on (put a TLS proxy in front for the internet)"
    ),
    port: int = typer.Option(8787, "--port", "-p", min=1, max=65535, help="port"),
    topic: str | None = typer.Option(
        None, "--topic", help="Kafka topic for accepted events (default WH_WEBHOOK_TOPIC)"
    ),
) -> None:
    """Receive signed order events on POST /events and queue them to Kafka.

    A venue signs each event: `X-WH-Timestamp` (Unix seconds) and `X-WH-Signature: sha256=` +
    hex(HMAC-SHA256(WH_WEBHOOK_SECRET, timestamp + raw body)). Refused, with the count by reason
    in GET /stats: a missing or wrong signature, a timestamp more than WH_WEBHOOK_WINDOW_S
    (300) away, a body that is not a JSON object with `event_id` and `type`, over 1 MiB. An
    event id seen within the window is answered `duplicate` and queued once. 200 only after the
    Kafka broker (WH_KAFKA_BOOTSTRAP) has the event; 503 (retry) if it does not take it in 5 s.
    The secret comes from the environment or .env and is never printed.

    Tried against wh's own sender, the simulator (`wh replay --webhook URL`), which signs
    this way; no exchange was tried (none is reachable from here). A venue with another
    signature scheme needs its header names and message layout mapped to this one. The only
    key is the shared WH_WEBHOOK_SECRET; no exchange API key is read.
    """
    import uvicorn

    from warehouse.ingest.kafka.broker import bootstrap_servers
    from warehouse.webhooks.receiver import create_app, kafka_publisher

    settings = get_settings()
    hook = settings.webhook
    if hook.secret is None or not hook.secret.get_secret_value():
        raise fail("set WH_WEBHOOK_SECRET (the key the venue signs events with) in the environment or .env")
    bootstrap = bootstrap_servers(settings)  # ConfigError: one Error line
    publish = kafka_publisher({"bootstrap.servers": bootstrap, **settings.kafka_config(), "log_level": "3"},
                              topic or hook.topic)  # fmt: skip
    app = create_app(hook.secret.get_secret_value().encode(), publish, window_s=hook.window_s)
    console.print(f"webhooks: POST http://{host}:{port}/events → Kafka topic {topic or hook.topic}; "
                  f"GET /stats for counts; Ctrl-C stops")  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@app.command("ingest")
def ingest(
    topic: str | None = typer.Option(None, "--topic", help="the event topic (default WH_WEBHOOK_TOPIC)"),
    group: str = typer.Option("wh-ledger", "--group", help="consumer group"),
    engine: EnginesChoice = typer.Option(EnginesChoice.all, "--engine", "-e", help="ledger engines"),
    stop_when_idle: float | None = typer.Option(
        None, "--stop-when-idle", min=0.1, help="exit after this many idle seconds"
    ),
) -> None:
    """Store queued order events in wh.orders / wh.fills: each fill once (by fill_id), each
    order at its newest state; offsets committed after the engines hold the batch."""
    from warehouse.ingest.kafka.broker import bootstrap_servers
    from warehouse.sql.engines import engine_names
    from warehouse.webhooks.ledger import run_writer

    settings = get_settings()
    names: list[str] = list(engine_names(engine.value))
    stats = run_writer(settings, bootstrap_servers(settings), topic or settings.webhook.topic, group, names,
                       stop_when_idle=stop_when_idle)  # fmt: skip
    console.print(f"events {stats.events:,}: fills stored {stats.fills:,}, orders stored or advanced {stats.orders:,}, "
                  f"other types {stats.other:,}, malformed {stats.malformed:,}")  # fmt: skip
