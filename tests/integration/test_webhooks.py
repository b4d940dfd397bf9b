"""Order-event webhooks in (warehouse/webhooks): signed events reach the Kafka topic once;
tampered, unsigned, stale, future, replayed and malformed ones are refused and counted; the
secret never shows; a Kafka that does not take the event gets a 503 and the retry is taken."""

from __future__ import annotations

import json
import time
import uuid
import warnings

import pytest

from warehouse.webhooks.signing import headers

pytestmark = [pytest.mark.integration]
SECRET = b"canary-" + uuid.uuid4().hex.encode()


def client(app):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient on httpx: a deprecation notice
        from starlette.testclient import TestClient

        return TestClient(app)


def event(event_id: str, kind: str = "fill") -> bytes:
    return json.dumps({"event_id": event_id, "type": kind, "order_id": "o-1", "qty": 0.5, "price": 9681.9}).encode()


def consume_all(broker: str, topic: str, expect: int, timeout: float = 20.0) -> list:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": broker, "group.id": f"t-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "log_level": "3"})  # fmt: skip
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < expect:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
        end = time.monotonic() + 1.5  # and nothing more arrives
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
    finally:
        c.close()
    return got


def test_signed_events_reach_kafka_once_and_bad_ones_are_refused(broker: str, topic: str, capfd) -> None:
    from warehouse.webhooks.receiver import create_app, kafka_publisher

    app = create_app(SECRET, kafka_publisher({"bootstrap.servers": broker, "log_level": "3"}, topic), window_s=300)
    now = int(time.time())
    with client(app) as http:
        ok = [
            http.post("/events", content=event(f"e{i}"), headers=headers(SECRET, now, event(f"e{i}"))) for i in range(5)
        ]
        assert [r.status_code for r in ok] == [200] * 5 and all(r.json()["status"] == "accepted" for r in ok)
        again = http.post("/events", content=event("e1"), headers=headers(SECRET, now, event("e1")))  # a retry
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        body = event("e9")
        tampered = body.replace(b"0.5", b"5.0")
        cases = [
            ("bad signature", http.post("/events", content=tampered, headers=headers(SECRET, now, body))),
            ("bad signature", http.post("/events", content=body, headers=headers(b"other", now, body))),  # other key
            ("missing signature headers", http.post("/events", content=body)),
            ("stale timestamp", http.post("/events", content=body, headers=headers(SECRET, now - 301, body))),
            ("timestamp in the future", http.post("/events", content=body, headers=headers(SECRET, now + 301, body))),
            ("body is not JSON", http.post("/events", content=b"{no", headers=headers(SECRET, now, b"{no"))),
            ("event needs a string event_id and type", http.post(
                "/events", content=b'{"type": "fill"}', headers=headers(SECRET, now, b'{"type": "fill"}'))),
        ]  # fmt: skip
        for reason, r in cases:
            assert r.status_code in (400, 401) and r.json() == {"status": "refused", "reason": reason}, (reason, r.text)
        # a signature of the same body under an old timestamp cannot be moved to a new one
        moved = headers(SECRET, now - 1000, body)
        moved["X-WH-Timestamp"] = str(now)
        assert http.post("/events", content=body, headers=moved).json()["reason"] == "bad signature"
        stats = http.get("/stats").json()
    assert stats["accepted"] == 5 and stats["duplicate"] == 1
    assert stats["refused"]["bad signature"] == 3 and sum(stats["refused"].values()) == 8
    msgs = consume_all(broker, topic, 5)
    assert sorted(m.key().decode() for m in msgs) == [f"e{i}" for i in range(5)]
    assert all(json.loads(m.value())["event_id"] == m.key().decode() for m in msgs)
    out, err = capfd.readouterr()
    assert SECRET.decode() not in out + err


def test_a_kafka_that_does_not_take_the_event_gets_a_retry(broker: str, topic: str) -> None:
    from warehouse.webhooks.receiver import create_app, kafka_publisher

    calls = {"n": 0}
    real = kafka_publisher({"bootstrap.servers": broker, "log_level": "3"}, topic)

    def flaky(event_id: str, body: bytes, stamp: str) -> None:  # the first attempt: the broker is away
        calls["n"] += 1
        if calls["n"] == 1:
            down = kafka_publisher({"bootstrap.servers": "127.0.0.1:9", "log_level": "0",
                                    "message.timeout.ms": 1000}, topic, timeout_s=1.5)  # fmt: skip
            down(event_id, body, stamp)
        real(event_id, body, stamp)

    app = create_app(SECRET, flaky)
    body = event("only-once")
    with client(app) as http:
        first = http.post("/events", content=body, headers=headers(SECRET, int(time.time()), body))
        assert first.status_code == 503 and first.json()["status"] == "retry"
        second = http.post("/events", content=body, headers=headers(SECRET, int(time.time()), body))
        assert second.status_code == 200 and second.json()["status"] == "accepted"
    assert [m.key() for m in consume_all(broker, topic, 1)] == [b"only-once"]


def test_the_command_needs_a_secret_and_never_prints_it(monkeypatch) -> None:
    from typer.testing import CliRunner

    from warehouse.cli.main import app

    monkeypatch.delenv("WH_WEBHOOK_SECRET", raising=False)
    r = CliRunner().invoke(app, ["webhooks", "serve"])
    assert r.exit_code == 1 and "WH_WEBHOOK_SECRET" in r.output
