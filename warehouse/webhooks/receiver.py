"""`wh webhooks serve`: the receiver of order-lifecycle events (fills, partial fills, order
state changes, margin alerts) that an execution venue POSTs, signed (signing.py).

Per request, before anything is kept: the signature over timestamp + raw body (constant-time
compare), the timestamp within ±`window_s` of this clock (a captured request cannot be
replayed later), a JSON object with an `event_id` and a `type`. An event id seen within the
window is answered 200 `duplicate` and not queued again (senders retry; the window bounds
what must be remembered, since an older timestamp is refused anyway). An accepted event goes
to a Kafka topic (key = event id, value = the raw body, the timestamp in a header) and the
answer is 200 once the broker has it — if Kafka does not take it within `queue_timeout_s`, 503,
so the sender retries and nothing acknowledged is lost. Refusals are counted by reason
(`GET /stats`); no secret or body is ever logged or echoed.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from warehouse.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

# a webhook event is small; under the Kafka producer's 1,000,000-byte message limit with room
# for the key and headers (a body the queue can never take must be a 413, not a 503 forever)
MAX_BODY = 512 * 1024
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII: a Kafka key, a log-safe value


@dataclass
class Counters:
    accepted: int = 0
    duplicate: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class SeenEvents:
    """Event ids within the replay window, each pending (being queued) or accepted; older ones
    forgotten (their timestamps are refused anyway)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._ids: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # id → (first seen, accepted)
        self._lock = threading.Lock()

    def add(self, event_id: str, now: float) -> str:
        """'new' (now pending), 'pending' (another request is queueing it) or 'accepted'."""
        with self._lock:
            while self._ids and next(iter(self._ids.values()))[0] < now - 2 * self.window_s:
                self._ids.popitem(last=False)
            state = self._ids.get(event_id)
            if state is not None:
                return "accepted" if state[1] else "pending"
            self._ids[event_id] = (now, False)
            return "new"

    def accept(self, event_id: str) -> None:
        with self._lock:
            if event_id in self._ids:
                self._ids[event_id] = (self._ids[event_id][0], True)

    def forget(self, event_id: str) -> None:
        with self._lock:
            self._ids.pop(event_id, None)


def create_app(secret: bytes, publish: Callable[..., None], *, window_s: float = 300.0,
               clock: Callable[[], float] = time.time) -> Starlette:  # fmt: skip
    """The ASGI app. `publish(event_id, body, timestamp, key)` hands an event to the queue and
    raises if the queue did not take it; its `close()`, if any, runs at shutdown."""
    if not secret:
        raise ValueError("a webhook secret is required")
    counters = Counters()
    seen = SeenEvents(window_s)

    def refuse(status: int, reason: str) -> JSONResponse:
        counters.refuse(reason)
        return JSONResponse({"status": "refused", "reason": reason}, status_code=status)

    async def receive(request: Request) -> JSONResponse:
        stamp, given = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        if not stamp or not given:  # before reading a byte of the body
            return refuse(401, "missing signature headers")
        length = request.headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            return refuse(400, "bad Content-Length")
        if length is not None and int(length) > MAX_BODY:
            return refuse(413, "body too large")
        body = bytearray()
        async for chunk in request.stream():  # chunked bodies have no length: count while reading
            body += chunk
            if len(body) > MAX_BODY:
                return refuse(413, "body too large")
        raw = bytes(body)
        if not verify(secret, stamp, given, raw):
            return refuse(401, "bad signature")
        now = clock()
        if abs(now - int(stamp)) > window_s:
            return refuse(401, "stale timestamp" if int(stamp) < now else "timestamp in the future")
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return refuse(400, "body is not JSON")
        if not isinstance(event, dict) or not isinstance(event.get("event_id"), str) \
                or not _EVENT_ID.fullmatch(event["event_id"]) or not isinstance(event.get("type"), str):  # fmt: skip
            return refuse(400, "event needs a string event_id (printable ASCII, ≤ 256) and type")
        event_id = event["event_id"]
        state = seen.add(event_id, now)
        if state == "accepted":
            counters.duplicate += 1
            return JSONResponse({"status": "duplicate", "event_id": event_id})
        if state == "pending":  # its first request is still being queued: its outcome is not known yet
            counters.refuse("in progress")
            return JSONResponse({"status": "retry", "reason": "in progress"}, status_code=409,
                                headers={"Retry-After": "1"})  # fmt: skip
        try:
            await run_in_threadpool(publish, event_id, raw, stamp, _key(event))
        except Exception:
            seen.forget(event_id)  # not queued: the sender's retry must be taken
            counters.refuse("queue unavailable")
            return JSONResponse({"status": "retry", "reason": "queue unavailable"}, status_code=503,
                                headers={"Retry-After": "1"})  # fmt: skip
        seen.accept(event_id)
        counters.accepted += 1
        return JSONResponse({"status": "accepted", "event_id": event_id})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": counters.accepted, "duplicate": counters.duplicate,
                             "refused": counters.refused})  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        close = getattr(publish, "close", None)
        if close is not None:  # what the queue still holds is delivered before the server exits
            await run_in_threadpool(close)

    app = Starlette(routes=[Route("/events", receive, methods=["POST"]), Route("/stats", stats, methods=["GET"])],
                    lifespan=lifespan)  # fmt: skip
    app.state.counters = counters
    return app


def _key(event: dict[str, Any]) -> str:
    """The Kafka key: the order the event is about (its versions stay in one partition, in
    order), else the event id."""
    for kind in ("order", "fill"):
        body = event.get(kind)
        if isinstance(body, dict) and isinstance(body.get("order_id"), str) and _EVENT_ID.fullmatch(body["order_id"]):
            return str(body["order_id"])
    return str(event["event_id"])


class KafkaPublisher:
    """publish() for create_app: produce to `topic` and wait for the broker's acknowledgement.
    librdkafka gives up on a message after `timeout_s` too (message.timeout.ms), so a 503 means
    the event was not queued — not "maybe later"."""

    def __init__(self, config: dict[str, Any], topic: str, timeout_s: float = 5.0) -> None:
        from confluent_kafka import Producer

        self.topic, self.timeout_s = topic, timeout_s
        self.producer = Producer({**config, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                                  "message.timeout.ms": int(timeout_s * 1000)})  # fmt: skip
        self.lock = threading.Lock()

    def __call__(self, event_id: str, body: bytes, timestamp: str, key: str | None = None) -> None:
        producer, topic, timeout_s, lock = self.producer, self.topic, self.timeout_s, self.lock
        result: dict[str, Any] = {}
        done = threading.Event()

        def delivered(err: Any, msg: Any) -> None:
            result["err"] = err
            done.set()

        with lock:
            producer.produce(topic, key=(key or event_id).encode(), value=body,
                             headers={"wh-timestamp": timestamp, "wh-event-id": event_id}, on_delivery=delivered)  # fmt: skip
        deadline = time.monotonic() + timeout_s + 1.0  # the delivery report comes by then
        while not done.is_set() and time.monotonic() < deadline:
            producer.poll(0.05)
        if not done.is_set() or result.get("err") is not None:
            raise RuntimeError(f"kafka did not take the event: {result.get('err') or 'timeout'}")

    def close(self) -> None:
        self.producer.flush(self.timeout_s)


def kafka_publisher(config: dict[str, Any], topic: str, timeout_s: float = 5.0) -> KafkaPublisher:
    return KafkaPublisher(config, topic, timeout_s)
