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
            ("stale timestamp", http.post("/events", content=body, headers=headers(SECRET, int(time.time()) - 330, body))),
            ("timestamp in the future", http.post("/events", content=body, headers=headers(SECRET, int(time.time()) + 330, body))),
            ("body is not JSON", http.post("/events", content=b"{no", headers=headers(SECRET, now, b"{no"))),
            ("event needs a string event_id (printable ASCII, ≤ 256) and type", http.post(
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

    def flaky(event_id: str, body: bytes, stamp: str, key: str | None = None) -> None:  # first: the broker is away
        calls["n"] += 1
        if calls["n"] == 1:
            down = kafka_publisher({"bootstrap.servers": "127.0.0.1:9", "log_level": "0"}, topic, timeout_s=1.5)
            down(event_id, body, stamp, key)
        real(event_id, body, stamp, key)

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


@pytest.mark.slow
@pytest.mark.clickhouse
def test_a_replays_webhooks_rebuild_its_ledger_exactly_once(home, tmp_path, tardis, broker: str, topic: str) -> None:
    """`wh replay --webhook` sends every order's final state and every fill to a real receiver
    (uvicorn, signed); `wh webhooks ingest` stores the queued events in another warehouse: its
    wh.orders and wh.fills equal what the simulator wrote directly, on DuckDB and ClickHouse.
    Sent again, every event is a duplicate and the rebuilt ledger does not change."""
    import os
    import socket
    import subprocess
    import sys
    import threading

    import uvicorn

    from warehouse.webhooks.receiver import create_app, kafka_publisher

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(SECRET, kafka_publisher({"bootstrap.servers": broker, "log_level": "3"}, topic))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    wh = [sys.executable, "-m", "warehouse.cli.main"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WH_CLICKHOUSE_", "WH_KAFKA_"))}
    direct = {**base, "WH_HOME": str(home), "WH_WEBHOOK_SECRET": SECRET.decode()}
    rebuilt = {**base, "WH_HOME": str(tmp_path / "rebuilt"), "WH_KAFKA_BOOTSTRAP": broker}

    def run(env: dict, *args: str) -> str:
        r = subprocess.run([*wh, *args], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    replay = ["replay", "--strategy", "zscore", "--sweep", "window=30,60", "--params", "notional=20000",
              "--symbols", "BTCUSDT", "--from", "2020-02-22", "--to", "2020-02-23", "--write-to", "duckdb",
              "--webhook", f"http://127.0.0.1:{port}/events"]  # fmt: skip
    try:
        run(direct, "import", *map(str, tardis))
        first = run(direct, *replay)
        assert "0 duplicates, 0 failed" in first, first
        ingest = ["webhooks", "ingest", "--topic", topic, "--engine", "all", "--stop-when-idle", "3"]
        run(rebuilt, *ingest)
        second = run(direct, *replay)  # the same run again: the same event ids
        assert " 0 accepted" in second and "0 failed" in second, second
        run(rebuilt, *ingest)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    def ledger(env: dict, engine: str) -> dict[str, list]:
        sql = {
            "orders": "SELECT * FROM wh.orders ORDER BY order_id",
            "fills": "SELECT * FROM wh.fills ORDER BY fill_id",
        }
        return {name: json.loads(run(env, "sql", q, "--engine", engine, "--format", "json", "--max-rows", "1000000"))
                for name, q in sql.items()}  # fmt: skip

    want = ledger(direct, "duckdb")
    assert len(want["orders"]) > 50 and len(want["fills"]) > 50
    assert ledger(rebuilt, "duckdb") == want
    got = ledger(rebuilt, "clickhouse")
    assert [r["order_id"] for r in got["orders"]] == [r["order_id"] for r in want["orders"]]
    assert [(r["fill_id"], r["qty"], r["price"], r["fee"]) for r in got["fills"]] == \
        [(r["fill_id"], r["qty"], r["price"], r["fee"]) for r in want["fills"]]  # fmt: skip


def test_a_retry_while_the_first_request_is_queueing_is_told_to_wait(monkeypatch) -> None:
    """The first request for an event id is still being queued: a retry gets 409 in progress
    (never 200 duplicate, which would lose the event if the first then failed)."""
    import threading

    from warehouse.webhooks.receiver import create_app

    release, entered = threading.Event(), threading.Event()

    def slow(event_id: str, body: bytes, stamp: str, key: str | None = None) -> None:
        entered.set()
        release.wait(10)

    app = create_app(SECRET, slow)
    body = event("slow-1")
    results: dict[str, int] = {}
    with client(app) as http:
        first = threading.Thread(target=lambda: results.setdefault("first", http.post(
            "/events", content=body, headers=headers(SECRET, int(time.time()), body)).status_code))  # fmt: skip
        first.start()
        assert entered.wait(10)
        retry = http.post("/events", content=body, headers=headers(SECRET, int(time.time()), body))
        assert retry.status_code == 409 and retry.json()["reason"] == "in progress" and retry.headers["Retry-After"]
        release.set()
        first.join(10)
        assert results["first"] == 200
        assert http.post("/events", content=body, headers=headers(SECRET, int(time.time()), body)).json()["status"] \
            == "duplicate"  # fmt: skip


def test_hostile_headers_and_bodies_get_a_4xx_not_a_500() -> None:
    from warehouse.webhooks.receiver import MAX_BODY, create_app

    app = create_app(SECRET, lambda *a: None)
    body = event("h-1")
    with client(app) as http:
        for stamp in ("9" * 400, "-5", " 1", "1e9", "0x10"):
            h = {**headers(SECRET, int(time.time()), body), "X-WH-Timestamp": stamp}
            r = http.post("/events", content=body, headers=h)
            assert r.status_code == 401 and r.json()["reason"] == "bad signature", stamp

        def chunks():  # no Content-Length: counted while read, refused past the limit
            for _ in range(MAX_BODY // 65_536 + 2):
                yield b" " * 65_536

        r = http.post("/events", content=chunks(), headers=headers(SECRET, int(time.time()), b""))
        assert r.status_code == 413
        deep = b"[" * 100_000 + b"]" * 100_000
        r = http.post("/events", content=deep, headers=headers(SECRET, int(time.time()), deep))
        assert r.status_code in (400, 413)
        bad_id = json.dumps({"event_id": "a\u00e9b", "type": "fill"}).encode()
        r = http.post("/events", content=bad_id, headers=headers(SECRET, int(time.time()), bad_id))
        assert r.status_code == 400


def test_the_ledger_keeps_each_orders_newest_state_and_each_fill_once(home) -> None:
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine
    from warehouse.sql.migrate import migrate
    from warehouse.webhooks.ledger import decode, store

    t0 = 1_700_000_000 * 10**9

    def order(status: str, t: int, filled: float = 0.0, **extra) -> bytes:
        row = {"order_id": "o1", "trader": "t", "created_at": t0, "updated_at": t0 + t, "symbol": "BTCUSDT",
               "asset_class": "crypto", "side": "buy", "order_type": "limit", "time_in_force": "GTC",
               "post_only": False, "qty": 1.0, "limit_price": 100.0, "filled_qty": filled,
               "avg_price": None, "status": status, "reason": None, "exchange": "x", **extra}  # fmt: skip
        return json.dumps({"event_id": f"order:o1:{t}:{status}", "type": "order", "order": row}).encode()

    def fill(fid: str, **extra) -> bytes:
        row = {"fill_id": fid, "order_id": "o1", "trader": "t", "timestamp": t0 + 5, "symbol": "BTCUSDT",
               "asset_class": "crypto", "side": "buy", "qty": 0.5, "price": 100.0, "fee": 0.01, "slippage": 0.0,
               "exchange": "x", **extra}  # fmt: skip
        return json.dumps({"event_id": f"fill:{fid}", "type": "fill", "fill": row}).encode()

    def state(eng) -> tuple:
        o = eng.query("SELECT status, filled_qty FROM wh.orders").to_pylist()
        f = eng.query("SELECT fill_id FROM wh.fills ORDER BY fill_id").column("fill_id").to_pylist()
        return o, f

    with open_engine("duckdb", get_settings()) as eng:
        migrate(eng)
        batches = [
            # two versions and a fill sent twice: the newer version, the fill once
            ([order("new", 1), order("partially_filled", 5, 0.5), fill("f1"), fill("f1")],
             ([("partially_filled", 0.5)], ["f1"])),
            # an older version arriving late, and the fill again: nothing changes
            ([order("new", 1), fill("f1")], ([("partially_filled", 0.5)], ["f1"])),
            # two versions at one updated_at, both terminal: the one further filled wins
            ([order("cancelled", 9, 0.5), order("filled", 9, 1.0)], ([("filled", 1.0)], ["f1"])),
            # an equal-rank, equal-fill version at the same time does not replace it; a fill with a
            # null required field, one with a wrong type, a margin alert and junk do not stop the batch
            ([order("cancelled", 9, 1.0), fill("f2"), fill("f3", exchange=None), fill("f4", qty="many"),
              b'{"event_id": "m1", "type": "margin_alert"}', b"{not json"], ([("filled", 1.0)], ["f1", "f2"])),
        ]  # fmt: skip
        for values, expected in batches:
            store(eng, decode(values))
            orders, fills = state(eng)
            assert ([(r["status"], r["filled_qty"]) for r in orders], fills) == expected
        decoded = decode(batches[-1][0])
        assert (decoded.other, decoded.malformed, decoded.fills.num_rows, decoded.orders.num_rows) == (1, 3, 1, 1)
