"""`wh capture`: the live edge — an exchange's public WebSocket streams into Kafka (warehouse/capture)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from warehouse.cli.common import console, err, fail, shorten
from warehouse.config import get_settings

if TYPE_CHECKING:
    from warehouse.capture.worker import CaptureStats


def register(app: typer.Typer) -> None:
    app.command()(capture)


def capture(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="a capture spec in pipelines/ (source: capture: …); flags override its fields"
    ),
    exchange: str | None = typer.Option(
        None, "--exchange", "-x", help="binanceusdm (Binance USDⓈ-M futures = Tardis binance-futures) or binance (spot)"
    ),
    symbols: str | None = typer.Option(
        None, "--symbols", "-s", help="comma-separated: the exchange's ids (BTCUSDT) or ccxt's (BTC/USDT:USDT)"
    ),
    channels: str | None = typer.Option(None, "--channels", help="quotes,trades (default both)"),
    topic: str | None = typer.Option(None, "--topic", help="Kafka topic (default: the spec's, else WH_KAFKA_TOPIC)"),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="Kafka bootstrap servers (default WH_KAFKA_BOOTSTRAP)"
    ),
    queue: int | None = typer.Option(None, "--queue", min=1, help="frames held between socket and producer (100,000)"),
    buffer: int = typer.Option(100_000, "--kafka-buffer", min=1, help="messages the producer holds for the broker"),
    stall: float | None = typer.Option(
        None, "--stall", min=0.1, help="seconds without a frame before reconnecting (60)"
    ),
    backoff_base: float | None = typer.Option(None, "--backoff-base", min=0.001, help="first reconnect delay, s (1)"),
    backoff_cap: float | None = typer.Option(None, "--backoff-cap", min=0.001, help="longest reconnect delay, s (60)"),
    jitter: float | None = typer.Option(None, "--jitter", min=0.0, help="random extra delay, 0…jitter s (1)"),
    ws_url: str | None = typer.Option(
        None, "--ws-url", help="the stream endpoint instead of the exchange's (a local or test exchange)"
    ),
    rest_url: str | None = typer.Option(None, "--rest-url", help="the REST host markets are loaded from instead"),
    worker: str | None = typer.Option(None, "--worker", help="this worker's name in wh.capture_gaps (host:exchange)"),
    duration: float | None = typer.Option(None, "--for", min=0.1, help="stop after this many seconds"),
    progress_s: float = typer.Option(5.0, "--progress", min=0.1, help="seconds between progress lines"),
    flush_s: float = typer.Option(30.0, "--flush-timeout", min=0.0, help="seconds to deliver what is held, at exit"),
) -> None:
    """Capture an exchange's public top of book and trades into Kafka until Ctrl-C/SIGTERM.

    Real exchanges: binanceusdm (wss://fstream.binance.com: `bookTicker`, `aggTrade`) and
    binance (spot, wss://stream.binance.com:9443). Public market data needs no API key and
    none is read. Tested against a local exchange that speaks Binance USDⓈ-M's frame format
    (tests/integration/local_exchange.py, replaying the Tardis sample day); this machine has
    no route to binance.com, so the live endpoints were not tried from here.

    Each frame is stamped on arrival (received_at) and keeps the exchange's event time (T)
    and ids: aggregate trade id → trade_id and seq (a skipped id becomes a gap event in
    wh.gaps). Messages go to the topic (key = symbol) in wh's JSON tick format; `wh ingest`
    stores them exactly once. A frame that does not parse becomes a reject (wh.rejects) with
    its raw text. The socket never waits for Kafka: a bounded queue sits between them; when
    it is full, frames are dropped, counted, and recorded in wh.capture_gaps. A failed or
    silent connection is dialled again after min(cap, base·2^n) + uniform(0, jitter) s and
    resubscribed; the time away becomes one wh.capture_gaps row per instrument. Progress:
    frames/s, queue depth, drops, reconnects, malformed, delivered. Exit 1 when messages
    were still held at exit (the broker was down) or could not be sent, or when the producer
    failed (the capture stops with it): the count is printed.
    """
    from warehouse.backoff import Backoff
    from warehouse.capture.venues import venue
    from warehouse.capture.worker import CaptureWorker
    from warehouse.ingest.kafka import bootstrap_servers, stop_signals
    from warehouse.pipeline.spec import CaptureSource, load_spec

    settings = get_settings()
    spec_src: CaptureSource | None = None
    if pipeline is not None:
        spec = load_spec(pipeline)
        if spec.source.capture is None:
            raise fail(f"--pipeline {pipeline}: the spec has no `source: capture:` (it reads Kafka or files)")
        spec_src = spec.source.capture
    name = exchange or (spec_src.exchange if spec_src else None)
    if name is None:
        raise fail("--exchange: which exchange? (binanceusdm or binance), or --pipeline NAME")
    ven = venue(name)
    syms = parse_list(symbols) if symbols else (list(spec_src.symbols) if spec_src else [])
    if not syms:
        raise fail("--symbols: which instruments? e.g. --symbols BTCUSDT,ETHUSDT")
    chans = tuple(parse_list(channels)) if channels else tuple(spec_src.channels if spec_src else ("quotes", "trades"))
    spec_backoff = spec_src.backoff if spec_src else None
    backoff = Backoff(
        backoff_base if backoff_base is not None else (spec_backoff.base_s if spec_backoff else 1.0),
        backoff_cap if backoff_cap is not None else (spec_backoff.cap_s if spec_backoff else 60.0),
        jitter if jitter is not None else (spec_backoff.jitter_s if spec_backoff else 1.0),
    )
    out_topic = topic or (spec_src.topic if spec_src else settings.kafka.topic)
    addr = bootstrap_servers(settings, bootstrap)
    cap = CaptureWorker(
        ven, syms, topic=out_topic, kafka_config={"bootstrap.servers": addr, **settings.kafka_config(), "log_level": "3"},
        channels=chans, queue_max=queue or (spec_src.queue if spec_src else 100_000), buffer_messages=buffer,
        backoff=backoff, stall_s=stall or (spec_src.stall_s if spec_src else 60.0), ws_url=ws_url, rest_url=rest_url,
        worker_id=worker, progress_s=progress_s, flush_s=flush_s, on_progress=_progress_line(ven.exchange),
    )  # fmt: skip
    err.print(f"capture {ven.exchange} ({ven.ccxt_id}) {', '.join(chans)} of {', '.join(syms)} → Kafka topic "
              f"{out_topic}; Ctrl-C stops")  # fmt: skip

    async def main(stopped: threading.Event) -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            end = time.monotonic() + duration if duration else None
            while not stopped.is_set() and (end is None or time.monotonic() < end):
                await asyncio.sleep(0.1)
            stop.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await cap.run(stop)
        finally:
            watcher.cancel()

    with stop_signals() as stopped:
        asyncio.run(main(stopped))
    st = cap.stats
    console.print(f"captured {st.frames:,} frames ({st.quotes:,} quotes, {st.trades:,} trades) in "
                  f"{time.monotonic() - st.started:.1f} s; malformed {st.malformed:,}; reconnects {st.reconnects:,}; "
                  f"outage rows {st.gaps:,}; dropped (queue full) {st.dropped:,}; delivered {st.delivered:,} of "
                  f"{st.produced:,} produced")  # fmt: skip
    for text, n in sorted(st.errors.items(), key=lambda kv: -kv[1])[:5]:
        err.print(f"warning ×{n}: {shorten(text)}")
    if cap.producer_error is not None:
        raise fail(f"the Kafka producer stopped ({shorten(cap.producer_error)}); capture stopped with it; "
                   f"{st.undelivered:,} messages not delivered")  # fmt: skip
    if st.undelivered or st.failed:
        raise fail(f"{st.undelivered + st.failed:,} messages did not reach Kafka {out_topic} "
                   f"({st.failed:,} delivery errors, {st.undelivered:,} still held at exit)")  # fmt: skip


def parse_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _progress_line(exchange: str) -> Callable[[CaptureStats], None]:
    last = {"t": time.monotonic(), "frames": 0.0}

    def show(st: CaptureStats) -> None:
        now = time.monotonic()
        rate = (st.frames - last["frames"]) / max(now - last["t"], 1e-9)
        last.update(t=now, frames=float(st.frames))
        err.print(f"capture {exchange}: {rate:,.0f} frames/s | frames {st.frames:,} | queue {st.queue_depth:,} | "
                  f"dropped {st.dropped:,} | reconnects {st.reconnects:,} | malformed {st.malformed:,} | "
                  f"delivered {st.delivered:,}")  # fmt: skip

    return show
