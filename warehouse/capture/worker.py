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
import collections
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

from warehouse.backoff import Backoff
from warehouse.capture.venues import MAX_SYMBOL, Malformed, Venue
from warehouse.errors import ConfigError, KafkaError

MAX_RAW = 4000  # characters of a bad frame kept in its reject (the warehouse keeps ≤ 4 KiB)


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
    started: float = field(default_factory=time.monotonic)
    errors: dict[str, int] = field(default_factory=dict)


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


@dataclass
class _Channel:
    """One stream (quotes or trades) on its own ccxt exchange object: its connections are its
    alone, so a failure closes exactly them."""

    name: str
    kind: str  # quote | trade
    ex: Any
    clients: list[Any] = field(default_factory=list)  # every client ccxt made for it (Retry-After)
    last_ns: int | None = None  # receipt time of its last data frame
    last_mono: float = 0.0
    dialled: float = 0.0  # monotonic time of its last dial
    away: _Away | None = None


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
        stall_s: float = 60.0,
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
        self.channels = tuple(dict.fromkeys(channels))
        self.queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=queue_max)
        self.control: collections.deque[tuple[str, bytes]] = collections.deque()  # outage rows: never dropped
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
        self._dropped: dict[tuple[str, str], _Dropped] = {}  # (kind, symbol) → frames dropped, queue full
        self._producer: Any = None
        self.producer_error: str | None = None
        self._producer_done = threading.Event()
        self._closing = threading.Event()

    # -- the socket side ---------------------------------------------------------------------------
    def _exchange(self, channel: _Channel | None) -> Any:
        import ccxt.pro as ccxtpro

        ex = getattr(ccxtpro, self.venue.ccxt_id)({"enableRateLimit": True, "newUpdates": True})
        if self.rest_url:
            base = self.rest_url.rstrip("/")
            for key, url in list(ex.urls["api"].items()):
                if isinstance(url, str) and url.startswith(self.venue.rest_host):
                    ex.urls["api"][key] = base + url[len(self.venue.rest_host) :]
        if self.ws_url:
            ex.urls["api"]["ws"][self.venue.ws_key] = self.ws_url.rstrip("/")
        if channel is None:
            return ex
        make_client = ex.client

        def client(url: str) -> Any:
            c = make_client(url)
            if not getattr(c, "_wh_hooked", False):
                c.handle_text_or_binary_message = lambda data, c=c: self._on_text(channel, c, data)
                c._wh_hooked = True
                channel.clients = [*channel.clients[-3:], c]
            return c

        ex.client = client
        return ex

    def _on_text(self, ch: _Channel, client: Any, data: str | bytes) -> None:
        """Every text frame of every connection, on the event loop: stamp, parse, enqueue.
        Nothing may escape: an exception here would stop ccxt's receive loop."""
        received = time.time_ns()
        if ch.ex.clients.get(client.url) is not client:
            return  # a connection given up (a stall): its late frames would double the new one's
        text = ""
        try:
            text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
            try:
                frame = json.loads(text)
            except (ValueError, RecursionError):
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
            self._reject(text, received, f"frame could not be read ({type(exc).__name__}: {str(exc)[:200]})")
            return
        ch.last_ns = received
        ch.last_mono = time.monotonic()
        self.stats.frames += 1
        if kind == "quote":
            self.stats.quotes += 1
        else:
            self.stats.trades += 1
        if ch.away is not None:
            away, ch.away = ch.away, None
            self._outage(ch.kind, away, received, "")
        self._put(record["symbol"], record, kind)

    def _reject(self, text: str, received: int, reason: str, symbol: Any = None) -> None:
        self.stats.malformed += 1
        raw = text if len(text) <= MAX_RAW else text[:MAX_RAW] + f"… ({len(text):,} chars)"
        sym = symbol if isinstance(symbol, str) and 0 < len(symbol) <= MAX_SYMBOL else None
        rec: dict[str, Any] = {"type": "reject", "source": f"capture:{self.venue.exchange}", "rule": "malformed",
                               "reason": f"capture: {reason}", "raw": raw, "exchange": self.venue.exchange,
                               "symbol": sym, "timestamp": received}  # fmt: skip
        self._put(sym or "", rec, None)

    def _put(self, key: str, record: dict[str, Any], kind: str | None) -> None:
        """Into the queue; full: the frame is dropped and counted, and a tick's instrument gets
        an outage row for the span (a reject is only counted: it has no instrument)."""
        try:
            self.queue.put_nowait((key, json.dumps(record, separators=(",", ":")).encode()))
            self.stats.queued += 1
        except queue.Full:
            self.stats.dropped += 1
            if kind is not None:
                received = int(record["received_at"])
                d = self._dropped.get((kind, key))
                if d is None:
                    self._dropped[(kind, key)] = _Dropped(received, received, 1)
                else:
                    d.last_ns, d.n = received, d.n + 1
            return
        if self._dropped and self.queue.qsize() < self.queue.maxsize // 2:
            self._flush_dropped()

    def _flush_dropped(self) -> None:
        for (kind, symbol), d in list(self._dropped.items()):
            self._control(symbol, self._gap_record(kind, symbol, d.first_ns, d.last_ns,
                                                   f"queue full: {d.n:,} frames dropped (Kafka slow or down)", 0))  # fmt: skip
            del self._dropped[(kind, symbol)]

    def _control(self, key: str, record: dict[str, Any]) -> None:
        self.control.append((key, json.dumps(record, separators=(",", ":")).encode()))
        self.stats.gaps += 1

    def _gap_record(self, kind: str, symbol: str, from_ns: int, to_ns: int, reason: str, dials: int) -> dict[str, Any]:
        return {"type": "gap", "worker": self.worker_id, "exchange": self.venue.exchange, "symbol": symbol,
                "kind": kind, "from_ts": from_ns, "to_ts": to_ns, "dials": dials, "reason": reason}  # fmt: skip

    def _outage(self, kind: str, away: _Away, to_ns: int, suffix: str) -> None:
        secs = (to_ns - away.since_ns) / 1e9
        for symbol in self.market_ids:
            self._control(symbol, self._gap_record(kind, symbol, away.since_ns, to_ns,
                                                   f"{away.reason}; away {secs:.3f} s, {away.dials} dial(s){suffix}",
                                                   away.dials))  # fmt: skip

    def _error(self, text: str) -> None:
        with self._lock:
            self.stats.errors[text[:200]] = self.stats.errors.get(text[:200], 0) + 1

    async def _watch(self, ch: _Channel) -> None:
        symbols = [ch.ex.markets_by_id[m][0]["symbol"] for m in self.market_ids]
        if ch.name == "quotes":
            await ch.ex.watch_bids_asks(symbols)
        else:
            await ch.ex.watch_trades_for_symbols(symbols, params={"name": self.venue.trades_stream})

    async def _channel(self, ch: _Channel, stop: asyncio.Event) -> None:
        """Subscribe; when the connection fails or stalls: close it, back off, dial, resubscribe."""
        failures = 0
        while not stop.is_set():
            ch.ex.ws_dial_backoff = {}  # one reconnect schedule: ours (a Retry-After still counts, below)
            watch = asyncio.ensure_future(self._watch(ch))
            stopper = asyncio.ensure_future(stop.wait())
            stall = asyncio.ensure_future(self._stalled(ch, stop))
            done, _ = await asyncio.wait({watch, stopper, stall}, return_when=asyncio.FIRST_COMPLETED)
            for t in (watch, stopper, stall):
                if not t.done():
                    t.cancel()
            if stop.is_set():
                return
            if watch in done and not watch.cancelled() and watch.exception() is not None:
                exc = watch.exception()
                reason = f"connection failed: {str(exc)[:160] or type(exc).__name__}"
            elif watch in done:
                reason = "stream ended"
            else:
                reason = f"no frame for {self.stall_s:g} s"
            await self._close(ch)  # whatever ccxt left open: the next watch dials anew and subscribes
            if ch.last_mono >= ch.dialled > 0 or (ch.dialled == 0 and ch.last_ns is not None):
                failures = 0  # frames flowed since the last dial: the schedule starts again
            if ch.away is None:
                ch.away = _Away(ch.last_ns if ch.last_ns is not None else time.time_ns(), reason)
            delay = self.backoff.delay(failures, self.rng)
            retry_after = max((getattr(c, "last_retry_after", None) or 0.0 for c in ch.clients), default=0.0)
            for c in ch.clients:
                c.last_retry_after = None
            failures += 1
            self.stats.reconnects += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(delay, retry_after))
            if stop.is_set():
                return
            ch.away.dials += 1
            ch.dialled = time.monotonic()

    async def _stalled(self, ch: _Channel, stop: asyncio.Event) -> None:
        """Returns when the channel has sent no data frame for `stall_s` (after subscribing)."""
        start = time.monotonic()
        while not stop.is_set():
            wait = max(ch.last_mono, start) + self.stall_s - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 1.0))
        await asyncio.Event().wait()  # stopping: never report a stall

    async def _close(self, ch: _Channel) -> None:
        clients = list((ch.ex.clients or {}).values())
        ch.ex.clients = {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

    async def _progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.progress_s)
            self.stats.queue_depth = self.queue.qsize()
            if self.on_progress is not None:
                self.on_progress(self.stats)

    async def _guard(self, stop: asyncio.Event) -> None:
        """The producer thread gone (a fatal Kafka error): stop capturing, say why."""
        while not stop.is_set():
            if self._producer_done.is_set():
                self._error(f"producer stopped: {self.producer_error or 'unknown'}; capture stopped")
                stop.set()
                return
            await asyncio.sleep(0.2)

    async def run(self, stop: asyncio.Event) -> CaptureStats:
        """Capture until `stop` is set; then flush the queue to Kafka (≤ flush_s) and return."""
        self._producer = self._make_producer()  # a bad Kafka setting fails here, before any socket opens
        producer = threading.Thread(target=self._produce, name="capture-producer", daemon=True)
        producer.start()
        chans: list[_Channel] = []
        try:
            loader = self._exchange(None)
            try:
                if not await self._load(loader, stop):
                    return self.stats
            finally:
                with contextlib.suppress(Exception):
                    await loader.close()
            for name in self.channels:
                ch = _Channel(name, "quote" if name == "quotes" else "trade", None)
                ch.ex = self._exchange(ch)
                ch.ex.set_markets(list(loader.markets.values()))
                chans.append(ch)
            tasks = [asyncio.ensure_future(self._channel(ch, stop)) for ch in chans]
            tasks += [asyncio.ensure_future(self._progress(stop)), asyncio.ensure_future(self._guard(stop))]
            await stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            now = time.time_ns()
            for ch in chans:
                with contextlib.suppress(Exception):
                    await ch.ex.close()
                if ch.away is not None:  # an outage that had not ended
                    away, ch.away = ch.away, None
                    self._outage(ch.kind, away, now, "; still away at exit")
            self._flush_dropped()
            self._closing.set()
            await asyncio.get_running_loop().run_in_executor(None, self._producer_done.wait, self.flush_s + 15)
        self.stats.queue_depth = self.queue.qsize()
        return self.stats

    async def _load(self, ex: Any, stop: asyncio.Event) -> bool:
        """Load the markets (REST), with the same backoff; resolve --symbols to exchange ids.
        False: stopped before the markets came."""
        import ccxt

        failures = 0
        while not stop.is_set():
            try:
                await ex.load_markets()
                break
            except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:  # the network or the exchange: retry
                self._error(f"load_markets: {exc}")
            except Exception as exc:
                raise ConfigError(f"{self.venue.ccxt_id}: cannot load markets: {str(exc)[:300]}") from None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.backoff.delay(failures, self.rng))
            failures += 1
        if stop.is_set():
            return False
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
        return True

    # -- the Kafka side ----------------------------------------------------------------------------
    def _make_producer(self) -> Any:
        from confluent_kafka import KafkaException, Producer

        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "message.timeout.ms": 0,  # never expire: a broker that is down fills the buffer instead
            "queue.buffering.max.messages": self.buffer_messages,
            "queue.buffering.max.kbytes": max(1024, min(self.buffer_messages // 2, 2_097_151)),
            **self.kafka_config,
        }
        try:
            return Producer(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise KafkaError(f"cannot create the Kafka producer: {str(exc)[:300]}") from None

    def _produce(self) -> None:
        """The producer thread: control rows first, then the queue; never drops what it took."""
        from confluent_kafka import KafkaException

        producer = self._producer

        def delivered(err: Any, msg: Any) -> None:
            with self._lock:
                if err is None:
                    self.stats.delivered += 1
                else:
                    self.stats.failed += 1
                    self.stats.errors[str(err)[:200]] = self.stats.errors.get(str(err)[:200], 0) + 1

        def held() -> int:
            return len(self.control) + self.queue.qsize() + len(producer)

        deadline: float | None = None
        try:
            while True:
                if self._closing.is_set() and deadline is None:
                    deadline = time.monotonic() + self.flush_s
                if self.control:
                    key, value = self.control[0]
                    from_control = True
                else:
                    try:
                        key, value = self.queue.get(timeout=0.1)
                    except queue.Empty:
                        producer.poll(0)
                        if self._closing.is_set() and not self.control:
                            break
                        continue
                    from_control = False
                while True:
                    try:
                        producer.produce(self.topic, value=value, key=key.encode(), on_delivery=delivered)
                        self.stats.produced += 1
                        break
                    except BufferError:  # the producer is full (broker slow or down): wait, the queue absorbs
                        producer.poll(0.1)
                        if self._closing.is_set() and deadline is None:
                            deadline = time.monotonic() + self.flush_s
                        if deadline is not None and time.monotonic() > deadline:
                            self.stats.undelivered += 1 + held() - (1 if from_control else 0)
                            return
                    except KafkaException as exc:  # this message cannot be sent (e.g. too large): counted
                        err = exc.args[0] if exc.args else None
                        with self._lock:
                            self.stats.failed += 1
                            self.stats.errors[f"produce: {str(exc)[:180]}"] = (
                                self.stats.errors.get(f"produce: {str(exc)[:180]}", 0) + 1
                            )
                        if err is not None and getattr(err, "fatal", lambda: False)():
                            self.producer_error = str(exc)[:300]
                            self.stats.undelivered += held() - (1 if from_control else 0)
                            return
                        break
                if from_control:
                    self.control.popleft()
                producer.poll(0)
            left = max(0.0, (deadline or time.monotonic() + self.flush_s) - time.monotonic())
            self.stats.undelivered += producer.flush(left)
        except Exception as exc:
            self.producer_error = f"{type(exc).__name__}: {str(exc)[:300]}"
            self.stats.undelivered += held()
        finally:
            self._producer_done.set()
