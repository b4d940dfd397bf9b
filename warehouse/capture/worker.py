"""The capture worker: an exchange's public WebSocket streams → Kafka, never blocking the socket.

    socket (asyncio, ccxt)  ──frames──▶  bounded queue  ──▶  producer thread  ──▶  Kafka topic
         every frame stamped on arrival       │ full: frame dropped,               key = symbol,
         (receipt time), parsed by the venue  │ counted, one gap event             idempotent
                                              ▼ per instrument                     producer

ccxt (ccxt.pro) owns the connection: the endpoint, the SUBSCRIBE protocol, market loading,
keep-alive pings and request pacing (`enableRateLimit`). Its `watch_*` calls keep only the
latest value per symbol, so the worker does not read frames through them: it takes every
text frame where ccxt's client receives it, and the `watch_*` call of each stream only
subscribes and raises when its connection fails. Frames that are not data (subscription
answers) go on to ccxt.

Reconnects: when a stream's connection fails, or sends nothing for `stall_s`, the worker
waits `min(cap, base·2^n) + uniform(0, jitter)` seconds (n = failures in a row, reset by a
frame), dials again, subscribes again. When frames flow again it sends one gap event per
instrument of that stream: from the last frame before to the first frame after, how long,
how many dials. ccxt's own dial backoff is cleared before each dial: one schedule, this one.

Kafka: the producer is idempotent (acks=all) and holds at most `buffer_messages` messages;
its messages never time out, so a broker that is down fills the buffer, then the queue, and
then frames are dropped — counted, and recorded as gap events (reason `queue full`) that are
sent when the queue has room again. Nothing taken into the queue is dropped silently; at
exit, messages the broker did not take within `flush_s` are counted as `undelivered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from warehouse.capture.venues import Malformed, Venue
from warehouse.errors import ConfigError, KafkaError

MAX_RAW = 4096


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: min(cap, base·2^n) + uniform(0, jitter), n = failures in a row."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 1.0

    def delay(self, n: int, rng: random.Random) -> float:
        return min(self.cap, self.base * 2 ** min(n, 30)) + rng.uniform(0.0, self.jitter)


@dataclass
class CaptureStats:
    frames: int = 0  # data frames received
    quotes: int = 0
    trades: int = 0
    malformed: int = 0
    dropped: int = 0  # queue full
    queued: int = 0  # records put into the queue (ticks, rejects, gap events)
    produced: int = 0
    delivered: int = 0
    failed: int = 0  # delivery reports with an error
    undelivered: int = 0  # still in the producer at exit
    reconnects: int = 0
    gaps: int = 0
    queue_depth: int = 0
    dials: list[float] = field(default_factory=list)  # monotonic time of each dial after a failure
    started: float = field(default_factory=time.monotonic)
    errors: dict[str, int] = field(default_factory=dict)

    def rate(self) -> float:
        return self.frames / max(time.monotonic() - self.started, 1e-9)


@dataclass
class _Away:
    since_ns: int  # receipt time of the last frame before the failure
    reason: str
    dials: int = 0


@dataclass
class _Dropped:
    first_ns: int
    last_ns: int
    n: int = 0


class CaptureWorker:
    """One worker per (exchange, symbols); `run(stop)` until `stop` is set."""

    def __init__(
        self,
        venue: Venue,
        symbols: list[str],
        *,
        topic: str,
        kafka_config: dict[str, Any],
        channels: tuple[str, ...] = ("quotes", "trades"),
        queue_max: int = 100_000,
        buffer_messages: int = 100_000,
        backoff: Backoff | None = None,
        stall_s: float = 30.0,
        ws_url: str | None = None,
        rest_url: str | None = None,
        worker_id: str | None = None,
        flush_s: float = 30.0,
        seed: int | None = None,
        on_progress: Callable[[CaptureStats], None] | None = None,
        progress_s: float = 5.0,
    ) -> None:
        if not symbols:
            raise ConfigError("capture needs at least one symbol (--symbols BTCUSDT,ETHUSDT)")
        bad = sorted(set(channels) - {"quotes", "trades"})
        if bad or not channels:
            raise ConfigError(f"channels: quotes and/or trades, not {', '.join(bad) or 'none'}")
        self.venue = venue
        self.symbols = symbols
        self.topic = topic
        self.kafka_config = kafka_config
        self.channels = channels
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=queue_max)
        self.buffer_messages = buffer_messages
        self.backoff = backoff or Backoff()
        self.stall_s = stall_s
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.worker_id = worker_id or f"{socket.gethostname()}:{venue.exchange}"
        self.flush_s = flush_s
        self.rng = random.Random(seed)
        self.on_progress = on_progress
        self.progress_s = progress_s
        self.stats = CaptureStats()
        self.market_ids: list[str] = []
        self._lock = threading.Lock()
        self._last_ns: dict[str, int] = {}  # channel → receipt time of its last data frame
        self._last_mono: dict[str, float] = {}
        self._away: dict[str, _Away] = {}
        self._dropped: dict[tuple[str, str], _Dropped] = {}
        self._urls: dict[str, str] = {}  # channel → its connection's url
        self._producer_done = threading.Event()
        self._closing = threading.Event()
        self.exchange: Any = None

    # -- the socket side ---------------------------------------------------------------------------
    def _exchange(self) -> Any:
        import ccxt.pro as ccxtpro

        ex = getattr(ccxtpro, self.venue.ccxt_id)({"enableRateLimit": True, "newUpdates": True})
        if self.rest_url:
            base = self.rest_url.rstrip("/")
            for key, url in list(ex.urls["api"].items()):
                if isinstance(url, str) and url.startswith(self.venue.rest_host):
                    ex.urls["api"][key] = base + url[len(self.venue.rest_host) :]
        if self.ws_url:
            ex.urls["api"]["ws"][self.venue.ws_key] = self.ws_url.rstrip("/")
        make_client = ex.client

        def client(url: str) -> Any:
            c = make_client(url)
            if not getattr(c, "_wh_hooked", False):
                c.handle_text_or_binary_message = lambda data, c=c: self._on_text(c, data)
                c._wh_hooked = True
            return c

        ex.client = client
        return ex

    def _on_text(self, client: Any, data: str | bytes) -> None:
        """Every text frame of every connection, on the event loop: stamp, parse, enqueue."""
        received = time.time_ns()
        text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
        try:
            frame = json.loads(text)
        except ValueError:
            self._reject(text, received, "frame is not valid JSON")
            return
        try:
            kind = self.venue.kind(frame)
            if kind is None:
                client.on_message_callback(client, frame)  # ccxt: subscription answers
                return
            record = self.venue.record(kind, frame, received)
        except Malformed as exc:
            self._reject(text, received, str(exc), frame.get("s") if isinstance(frame, dict) else None)
            return
        except Exception as exc:
            self._error(f"ccxt: {exc}")
            return
        channel = "quotes" if kind == "quote" else "trades"
        self._urls[channel] = client.url
        self._last_ns[channel] = received
        self._last_mono[channel] = time.monotonic()
        self.stats.frames += 1
        if kind == "quote":
            self.stats.quotes += 1
        else:
            self.stats.trades += 1
        away = self._away.pop(channel, None)
        if away is not None:
            self._back(channel, away, received)
        self._put(record["symbol"], record, kind)

    def _reject(self, text: str, received: int, reason: str, symbol: Any = None) -> None:
        self.stats.malformed += 1
        raw = text if len(text) <= MAX_RAW else text[:MAX_RAW] + f"… ({len(text):,} chars)"
        sym = symbol if isinstance(symbol, str) else None
        rec: dict[str, Any] = {"type": "reject", "source": f"capture:{self.venue.exchange}", "rule": "malformed",
                               "reason": f"capture: {reason}", "raw": raw, "exchange": self.venue.exchange,
                               "symbol": sym, "timestamp": received}  # fmt: skip
        self._put(sym or "", rec, "reject")

    def _put(self, key: str, record: dict[str, Any], kind: str) -> None:
        try:
            self.queue.put_nowait((key, json.dumps(record, separators=(",", ":")).encode()))
            self.stats.queued += 1
        except queue.Full:
            self.stats.dropped += 1
            d = self._dropped.get((kind, key))
            ts = int(record.get("received_at", record.get("timestamp", time.time_ns())))
            if d is None:
                self._dropped[(kind, key)] = _Dropped(ts, ts, 1)
            else:
                d.last_ns, d.n = ts, d.n + 1
            return
        if self._dropped and self.queue.qsize() < self.queue.maxsize // 2:
            self._flush_dropped()

    def _flush_dropped(self) -> None:
        for (kind, symbol), d in list(self._dropped.items()):
            gap = self._gap_record(kind, symbol, d.first_ns, d.last_ns,
                                   f"queue full: {d.n:,} frames dropped (Kafka slow or down)", 0)  # fmt: skip
            try:
                self.queue.put_nowait((symbol, json.dumps(gap, separators=(",", ":")).encode()))
            except queue.Full:
                return
            self.stats.queued += 1
            self.stats.gaps += 1
            del self._dropped[(kind, symbol)]

    def _gap_record(self, kind: str, symbol: str, from_ns: int, to_ns: int, reason: str, dials: int) -> dict[str, Any]:
        return {"type": "gap", "worker": self.worker_id, "exchange": self.venue.exchange, "symbol": symbol,
                "kind": kind, "from_ts": from_ns, "to_ts": to_ns, "dials": dials, "reason": reason}  # fmt: skip

    def _back(self, channel: str, away: _Away, received: int) -> None:
        kind = "quote" if channel == "quotes" else "trade"
        secs = (received - away.since_ns) / 1e9
        for symbol in self.market_ids:
            self._put(symbol, self._gap_record(kind, symbol, away.since_ns, received,
                                               f"{away.reason}; away {secs:.3f} s, {away.dials} dial(s)", away.dials),
                      "gap")  # fmt: skip
            self.stats.gaps += 1

    def _error(self, text: str) -> None:
        with self._lock:
            self.stats.errors[text[:200]] = self.stats.errors.get(text[:200], 0) + 1

    async def _watch(self, ex: Any, channel: str) -> None:
        symbols = [ex.markets_by_id[m][0]["symbol"] for m in self.market_ids]
        if channel == "quotes":
            await ex.watch_bids_asks(symbols)
        else:
            await ex.watch_trades_for_symbols(symbols, params={"name": self.venue.trades_stream})

    async def _channel(self, ex: Any, channel: str, stop: asyncio.Event) -> None:
        """Subscribe; when the connection fails or stalls, back off, dial again, resubscribe."""
        failures = 0
        while not stop.is_set():
            ex.ws_dial_backoff = {}  # one reconnect schedule: ours
            watch = asyncio.ensure_future(self._watch(ex, channel))
            stopper = asyncio.ensure_future(stop.wait())
            stall = asyncio.ensure_future(self._stalled(channel, stop))
            done, _ = await asyncio.wait({watch, stopper, stall}, return_when=asyncio.FIRST_COMPLETED)
            for t in (watch, stopper, stall):
                if not t.done():
                    t.cancel()
            if stop.is_set():
                return
            if stall in done:
                reason = f"no frame for {self.stall_s:g} s"
                await self._drop(ex, channel)
            else:
                exc = watch.exception() if not watch.cancelled() else None
                reason = f"connection failed: {str(exc)[:160] or type(exc).__name__}" if exc else "stream ended"
            if channel in self._last_mono and self._last_mono[channel] >= self._dial_mono.get(channel, 0.0):
                failures = 0  # frames flowed since the last dial: the schedule starts again
            away = self._away.get(channel)
            if away is None:
                away = self._away[channel] = _Away(self._last_ns.get(channel, time.time_ns()), reason)
            delay = self.backoff.delay(failures, self.rng)
            failures += 1
            self.stats.reconnects += 1
            await asyncio.sleep(delay)
            self.stats.dials.append(time.monotonic())
            away.dials += 1
            self._dial_mono[channel] = time.monotonic()

    async def _stalled(self, channel: str, stop: asyncio.Event) -> None:
        """Returns when the channel has sent no data frame for `stall_s` (after subscribing)."""
        start = time.monotonic()
        while not stop.is_set():
            last = max(self._last_mono.get(channel, start), start)
            wait = last + self.stall_s - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 1.0))
        await asyncio.Event().wait()  # stopping: never report a stall

    async def _drop(self, ex: Any, channel: str) -> None:
        url = self._urls.get(channel)
        client = ex.clients.pop(url, None) if url and ex.clients else None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def _progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.progress_s)
            self.stats.queue_depth = self.queue.qsize()
            if self.on_progress is not None:
                self.on_progress(self.stats)

    async def run(self, stop: asyncio.Event) -> CaptureStats:
        """Capture until `stop` is set; then flush the queue to Kafka (≤ flush_s) and return."""
        self._dial_mono: dict[str, float] = {}
        producer = threading.Thread(target=self._produce, name="capture-producer", daemon=True)
        producer.start()
        ex = self.exchange = self._exchange()
        try:
            await self._load(ex, stop)
            tasks = [asyncio.ensure_future(self._channel(ex, c, stop)) for c in self.channels]
            tasks.append(asyncio.ensure_future(self._progress(stop)))
            await stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await ex.close()
            self._flush_dropped()
            self._closing.set()
            await asyncio.get_running_loop().run_in_executor(None, self._producer_done.wait, self.flush_s + 15)
        self.stats.queue_depth = self.queue.qsize()
        return self.stats

    async def _load(self, ex: Any, stop: asyncio.Event) -> None:
        """Load the markets (REST), with the same backoff; resolve --symbols to exchange ids."""
        failures = 0
        while True:
            try:
                await ex.load_markets()
                break
            except Exception as exc:
                import ccxt

                if not isinstance(exc, ccxt.NetworkError | ccxt.ExchangeNotAvailable) or stop.is_set():
                    raise ConfigError(f"{self.venue.ccxt_id}: cannot load markets: {str(exc)[:300]}") from None
                self._error(f"load_markets: {exc}")
                await asyncio.sleep(self.backoff.delay(failures, self.rng))
                failures += 1
        ids: list[str] = []
        for s in self.symbols:
            if s in ex.markets_by_id:
                ids.append(s)
            elif s in ex.markets:
                ids.append(ex.markets[s]["id"])
            elif s.upper() in ex.markets_by_id:
                ids.append(s.upper())
            else:
                some = ", ".join(sorted(ex.markets_by_id)[:8])
                raise ConfigError(f"{self.venue.ccxt_id}: unknown symbol {s!r} (the exchange lists e.g. {some})")
        self.market_ids = list(dict.fromkeys(ids))

    # -- the Kafka side ----------------------------------------------------------------------------
    def _produce(self) -> None:
        from confluent_kafka import KafkaException, Producer

        def delivered(err: Any, msg: Any) -> None:
            with self._lock:
                if err is None:
                    self.stats.delivered += 1
                else:
                    self.stats.failed += 1
                    self.stats.errors[str(err)[:200]] = self.stats.errors.get(str(err)[:200], 0) + 1

        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "message.timeout.ms": 0,  # never expire: a broker that is down fills the buffer instead
            "queue.buffering.max.messages": self.buffer_messages,
            "queue.buffering.max.kbytes": max(1024, self.buffer_messages // 2),
            **self.kafka_config,
        }
        try:
            producer = Producer(conf)
        except KafkaException as exc:
            self._error(f"producer: {exc}")
            self._producer_done.set()
            raise KafkaError(f"cannot create the producer: {exc}") from None
        try:
            deadline: float | None = None
            while True:
                if self._closing.is_set() and deadline is None:
                    deadline = time.monotonic() + self.flush_s
                try:
                    key, value = self.queue.get(timeout=0.1)
                except queue.Empty:
                    producer.poll(0)
                    if self._closing.is_set():
                        break
                    continue
                while True:
                    try:
                        producer.produce(self.topic, value=value, key=key.encode(), on_delivery=delivered)
                        self.stats.produced += 1
                        break
                    except BufferError:  # the producer is full (broker slow or down): wait, the queue absorbs
                        producer.poll(0.1)
                        if deadline is not None and time.monotonic() > deadline:
                            self.stats.undelivered += 1 + self.queue.qsize()
                            return
                        if self._closing.is_set() and deadline is None:
                            deadline = time.monotonic() + self.flush_s
                producer.poll(0)
            left = max(0.0, (deadline or time.monotonic() + self.flush_s) - time.monotonic())
            self.stats.undelivered += producer.flush(left)
        finally:
            self._producer_done.set()
