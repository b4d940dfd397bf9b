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

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from warehouse.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

MAX_BODY = 1 << 20  # a webhook event is small: a 1 MiB body is refused before it is read further


@dataclass
class Counters:
    accepted: int = 0
    duplicate: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class SeenEvents:
    """Event ids accepted within the replay window (time-ordered; older ones forgotten)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, event_id: str, now: float) -> bool:
        """True if new (and remembered), False if seen within the window."""
        with self._lock:
            while self._ids and next(iter(self._ids.values())) < now - 2 * self.window_s:
                self._ids.popitem(last=False)
            if event_id in self._ids:
                return False
            self._ids[event_id] = now
            return True

    def forget(self, event_id: str) -> None:
        with self._lock:
            self._ids.pop(event_id, None)


def create_app(secret: bytes, publish: Callable[[str, bytes, str], None], *, window_s: float = 300.0,
               clock: Callable[[], float] = time.time) -> Starlette:  # fmt: skip
    """The ASGI app. `publish(event_id, body, timestamp)` hands an event to the queue and
    raises if the queue did not take it."""
    if not secret:
        raise ValueError("a webhook secret is required")
    counters = Counters()
    seen = SeenEvents(window_s)

    def refuse(status: int, reason: str) -> JSONResponse:
        counters.refuse(reason)
        return JSONResponse({"status": "refused", "reason": reason}, status_code=status)

    async def receive(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return refuse(413, "body too large")
        body = await request.body()
        if len(body) > MAX_BODY:
            return refuse(413, "body too large")
        stamp, given = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        if not stamp or not given:
            return refuse(401, "missing signature headers")
        if not verify(secret, stamp, given, body):
            return refuse(401, "bad signature")
        now = clock()
        if abs(now - int(stamp)) > window_s:
            return refuse(401, "stale timestamp" if int(stamp) < now else "timestamp in the future")
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return refuse(400, "body is not JSON")
        if not isinstance(event, dict) or not isinstance(event.get("event_id"), str) or not event["event_id"] \
                or not isinstance(event.get("type"), str):  # fmt: skip
            return refuse(400, "event needs a string event_id and type")
        event_id = event["event_id"]
        if not seen.add(event_id, now):
            counters.duplicate += 1
            return JSONResponse({"status": "duplicate", "event_id": event_id})
        try:
            await run_in_threadpool(publish, event_id, body, stamp)
        except Exception:
            seen.forget(event_id)  # not queued: the sender's retry must be taken
            counters.refuse("queue unavailable")
            return JSONResponse({"status": "retry", "reason": "queue unavailable"}, status_code=503)
        counters.accepted += 1
        return JSONResponse({"status": "accepted", "event_id": event_id})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": counters.accepted, "duplicate": counters.duplicate,
                             "refused": counters.refused})  # fmt: skip

    app = Starlette(routes=[Route("/events", receive, methods=["POST"]), Route("/stats", stats, methods=["GET"])])
    app.state.counters = counters
    return app


def kafka_publisher(config: dict[str, Any], topic: str, timeout_s: float = 5.0) -> Callable[[str, bytes, str], None]:
    """publish() for create_app: produce to `topic` and wait for the broker's acknowledgement."""
    from confluent_kafka import Producer

    producer = Producer({**config, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
    lock = threading.Lock()

    def publish(event_id: str, body: bytes, timestamp: str) -> None:
        result: dict[str, Any] = {}
        done = threading.Event()

        def delivered(err: Any, msg: Any) -> None:
            result["err"] = err
            done.set()

        with lock:
            producer.produce(topic, key=event_id.encode(), value=body, headers={"wh-timestamp": timestamp},
                             on_delivery=delivered)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not done.is_set() and time.monotonic() < deadline:
            producer.poll(0.05)
        if not done.is_set() or result.get("err") is not None:
            raise RuntimeError(f"kafka did not take the event: {result.get('err') or 'timeout'}")

    return publish
