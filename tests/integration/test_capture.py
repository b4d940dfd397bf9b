"""`wh capture` against a local exchange that speaks Binance USDⓈ-M's stream format
(local_exchange.py, replaying the Tardis sample day as `bookTicker` and `aggTrade` frames),
through the Kafka broker of the tests, stored by `wh ingest`: every replayed tick once,
malformed frames as rejects, a dropped connection redialled on the backoff schedule with
one outage row, a silent one detected, memory bounded while Kafka is down."""

from __future__ import annotations

import asyncio
import csv
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from local_exchange import LocalExchange, Script, local_exchange, tardis_frames
from test_kafka import ingest_in_process

from warehouse.backoff import Backoff
from warehouse.capture.venues import venue
from warehouse.capture.worker import CaptureWorker
from warehouse.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.clickhouse]
WH = [sys.executable, "-m", "warehouse.cli.main"]
BOTH = ("btcusdt@bookTicker", "btcusdt@aggTrade")


def capture(ex: LocalExchange, broker: str, topic: str, settle_s: float = 1.0, **kw: Any) -> CaptureWorker:
    """Run a worker against `ex` until the replay is over (+ settle_s), in this thread."""
    worker = CaptureWorker(venue("binanceusdm"), ["BTCUSDT"], topic=topic, ws_url=ex.ws_url, rest_url=ex.rest_url,
                           kafka_config={"bootstrap.servers": broker, "log_level": "3"}, seed=7, **kw)  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()

        async def until_done() -> None:
            while not ex.done.is_set():
                await asyncio.sleep(0.05)
            await asyncio.sleep(settle_s)
            stop.set()

        task = asyncio.ensure_future(until_done())
        await worker.run(stop)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 120))
    return worker


def stored(settings: Settings) -> dict[str, list[tuple]]:
    from warehouse.sql.engines import close_embedded, open_engine

    eng = open_engine("duckdb", settings, read_only=True)
    try:
        q = {
            "quotes": "SELECT epoch_ns(timestamp), bid, ask, bid_size, ask_size, seq, epoch_ns(received_at) "
                      "FROM wh.market_ticks ORDER BY 1, 2, 3, 4, 5",
            "trades": "SELECT epoch_ns(timestamp), trade_id, side, price, size, seq FROM wh.trades ORDER BY 1, 2",
            "rejects": "SELECT source, rule, reason, raw FROM wh.rejects ORDER BY source_offset",
            "outages": "SELECT worker, exchange, symbol, kind, epoch_ns(from_ts), epoch_ns(to_ts), seconds, dials, "
                       "reason FROM wh.capture_gaps ORDER BY from_ts",
            "gaps": "SELECT kind, symbol, from_seq, to_seq, missing FROM wh.gaps ORDER BY from_seq",
        }  # fmt: skip
        return {k: [tuple(r.values()) for r in eng.query(sql).to_pylist()] for k, sql in q.items()}
    finally:
        eng.close()
        close_embedded()


def expected(frames: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    ns = 1_000_000
    quotes = sorted((f["T"] * ns, float(f["b"]), float(f["a"]), float(f["B"]), float(f["A"]))
                    for f in frames if f["e"] == "bookTicker")  # fmt: skip
    trades = sorted((f["T"] * ns, str(f["a"]), "sell" if f["m"] else "buy", float(f["p"]), float(f["q"]), f["a"])
                    for f in frames if f["e"] == "aggTrade")  # fmt: skip
    return {"quotes": quotes, "trades": trades}


def test_every_replayed_tick_reaches_the_warehouse_once_and_bad_frames_are_rejects(
    home: Path, broker: str, topic: str, tardis: tuple[Path, Path]
) -> None:
    frames = tardis_frames(*tardis, limit=1500)
    bad = {40: b"{not json", 90: b'{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"NaN","q":"1","T":1,"m":false}',
           300: b"[1,2,3]", 700: b'{"e":"bookTicker","s":"BTCUSDT","b":"9681.9","B":"1","a":"oops","A":"1","T":1}',
           1100: b"\xff\xfe not text", 2000: b'{"e":"depthUpdate","s":"BTCUSDT"}',
           2500: b"[" * 100_000}  # nested too deep for a JSON parser: a reject, the stream goes on  # fmt: skip
    t0 = time.time_ns()
    with local_exchange(frames, Script(hold_until_subscribed=BOTH, malformed=bad)) as ex:
        worker = capture(ex, broker, topic)
        sent = list(ex.sent)
    t1 = time.time_ns()
    assert not ex.lost and len(sent) == len(frames) == 3000
    st = worker.stats
    assert (st.frames, st.quotes, st.trades, st.malformed) == (3000, 1500, 1500, len(bad))
    assert st.dropped == 0 and st.reconnects == 0 and st.delivered == st.produced == st.queued == 3000 + len(bad)

    settings = Settings()
    ingest_in_process(settings, broker, topic)
    got = stored(settings)
    want = expected(sent)
    assert [r[:5] for r in got["quotes"]] == want["quotes"]  # every quote once, as the exchange sent it
    assert all(r[5] is None and t0 <= r[6] <= t1 for r in got["quotes"])  # receipt time: stamped on arrival
    assert got["trades"] == want["trades"]  # every trade once; seq = the aggregate trade id
    # … and they are the sample file's rows: the same prices, sizes, sides and ids as `wh import` reads
    with tardis[1].open(newline="") as fh:
        rows = [r for _, r in zip(range(1500), csv.DictReader(fh), strict=False)]
    assert sorted((r["id"], r["side"], float(r["price"]), float(r["amount"])) for r in rows) == sorted(
        (t[1], t[2], t[3], t[4]) for t in got["trades"]
    )
    assert len(got["rejects"]) == len(bad)
    reasons = {raw: reason for _, _, reason, raw in got["rejects"]}
    assert all(src.startswith(f"kafka:{topic}/") and rule == "malformed" for src, rule, _, _ in got["rejects"])
    assert set(reasons) == {t if len(t) <= 4000 else t[:4000] + f"… ({len(t):,} chars)"  # raw text kept (bounded)
                            for t in (b.decode("utf-8", "backslashreplace") for b in bad.values())}  # fmt: skip
    assert reasons["{not json"] == "capture: frame is not valid JSON"
    assert reasons["[1,2,3]"] == "capture: frame is a JSON list, not an object"
    assert reasons["[" * 4000 + "… (100,000 chars)"] == "capture: frame is not valid JSON"
    assert "field p is not a finite number ('NaN')" in reasons[bad[90].decode()]
    assert "field a is not a number ('oops')" in reasons[bad[700].decode()]
    assert "unknown frame (event 'depthUpdate')" in reasons[bad[2000].decode()]
    assert not got["outages"] and not got["gaps"]

    # a second consumer group re-reading the whole topic stores nothing new
    _, again = ingest_in_process(settings, broker, topic, group=f"again-{topic}")
    assert again.messages == 3000 + len(bad) and stored(settings) == got


def test_dropped_connection_redials_on_the_backoff_schedule_and_records_one_outage(
    home: Path, broker: str, topic: str, tardis: tuple[Path, Path]
) -> None:
    frames = tardis_frames(*tardis, limit=1500)
    # the trade stream's connection dies after 300 trades; the next two dials are refused (HTTP 503)
    script = Script(hold_until_subscribed=BOTH, drop={"btcusdt@aggTrade": 300}, refuse={3, 4}, rate=1500)
    backoff = Backoff(base=0.2, cap=0.5, jitter=0.05)
    with local_exchange(frames, script) as ex:
        worker = capture(ex, broker, topic, backoff=backoff)
        sent, lost, dials, drops = list(ex.sent), list(ex.lost), list(ex.dials), list(ex.drops)
    assert len(drops) == 1 and len(dials) == 5  # two first dials, two refused, one that holds
    # delays: min(cap, base·2^n) + U(0, jitter) → 0.2, 0.4, 0.5 (cap) s, each plus ≤ 0.05 s
    waits = [dials[2] - drops[0], dials[3] - dials[2], dials[4] - dials[3]]
    for got, floor in zip(waits, (0.2, 0.4, 0.5), strict=True):
        assert floor <= got <= floor + 0.05 + 0.35, waits  # + the time to see the failure and dial (a busy CI)
    assert worker.stats.reconnects == 3 and worker.stats.gaps == 1
    lost_trades = [f for f in lost if f["e"] == "aggTrade"]
    assert lost_trades and not [f for f in lost if f["e"] == "bookTicker"]

    settings = Settings()
    ingest_in_process(settings, broker, topic)
    got = stored(settings)
    want = expected(sent)
    assert [r[:5] for r in got["quotes"]] == want["quotes"] and got["trades"] == want["trades"]
    # one outage row: the trade stream of BTCUSDT, from its last frame before to its first after
    ((worker_id, exchange, symbol, kind, from_ts, to_ts, seconds, n_dials, reason),) = got["outages"]
    assert (exchange, symbol, kind, n_dials) == ("binance-futures", "BTCUSDT", "trade", 3)
    assert worker_id == f"{socket.gethostname()}:binance-futures"
    assert seconds >= 0.2 + 0.4 + 0.5 and to_ts - from_ts == pytest.approx(seconds * 1e9, abs=1e3)
    assert "connection failed" in reason and "3 dial(s)" in reason
    # … and the aggregate ids it missed, counted exactly by the sanitizer's sequence rule
    ids = sorted(f["a"] for f in lost_trades)
    assert got["gaps"] == [("trade", "BTCUSDT", ids[0], ids[-1], len(ids))]


@pytest.mark.slow
def test_a_refused_subscription_is_redialled_and_an_outage_open_at_exit_is_recorded(
    home: Path, broker: str, topic: str, tardis: tuple[Path, Path]
) -> None:
    """The exchange answers the trade stream's first SUBSCRIBE with an error (socket left open):
    the worker closes it and dials again. Later the quote stream dies and every redial is
    refused until the end: its outage is still written, ending at exit."""
    frames = tardis_frames(*tardis, limit=600)
    script = Script(hold_until_subscribed=("btcusdt@bookTicker",), error_subscribe={2},
                    drop={"btcusdt@bookTicker": 300}, refuse=set(range(4, 100)), rate=600)  # fmt: skip
    with local_exchange(frames, script) as ex:
        worker = capture(ex, broker, topic, stall_s=30, backoff=Backoff(0.1, 0.3, 0.0))
        sent = list(ex.sent)
    assert len([f for f in sent if f["e"] == "aggTrade"]) > 400  # the trade stream came back after the error
    ingest_in_process(Settings(), broker, topic)
    got = stored(Settings())
    assert got["trades"] == expected(sent)["trades"] and [r[:5] for r in got["quotes"]] == expected(sent)["quotes"]
    kinds = {o[3]: o for o in got["outages"]}
    assert set(kinds) == {"quote", "trade"} and worker.stats.gaps == 2
    assert "still away at exit" in kinds["quote"][8] and kinds["quote"][7] >= 3
    assert "connection failed" in kinds["trade"][8] and kinds["trade"][7] == 1


@pytest.mark.slow
def test_a_silent_connection_is_dropped_and_redialled(
    home: Path, broker: str, topic: str, tardis: tuple[Path, Path]
) -> None:
    frames = tardis_frames(*tardis, limit=600)
    script = Script(hold_until_subscribed=BOTH, stall={"btcusdt@bookTicker": 100}, stall_s=5.0, rate=600)
    with local_exchange(frames, script) as ex:
        worker = capture(ex, broker, topic, stall_s=0.5, backoff=Backoff(0.1, 1.0, 0.0))
        sent = list(ex.sent)
    assert worker.stats.reconnects >= 1 and len(ex.dials) >= 3
    ingest_in_process(Settings(), broker, topic)
    got = stored(Settings())
    assert [r[:5] for r in got["quotes"]] == expected(sent)["quotes"]
    quote_outages = [o for o in got["outages"] if o[3] == "quote"]
    assert quote_outages and "no frame for 0.5 s" in quote_outages[0][8]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _frames_seen(lines: list[str]) -> int:
    seen = [
        int(m.group(1).replace(",", "")) for line in list(lines) if (m := re.search(r"\| frames ([\d,]+) \|", line))
    ]
    return max(seen, default=0)


def _many(frames: list[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    """The sample replayed `times` times, later each round, ids shifted: a long busy stream."""
    span = frames[-1]["T"] - frames[0]["T"] + 1
    out = []
    for k in range(times):
        for f in frames:
            g = dict(f, T=f["T"] + k * span, E=f["E"] + k * span)
            if g["e"] == "aggTrade":
                g["a"] = g["f"] = g["l"] = f["a"] + k * 1_000_000
            out.append(g)
    return out


@pytest.mark.slow
def test_memory_stays_bounded_when_kafka_is_down(home: Path, tardis: tuple[Path, Path]) -> None:
    """`wh capture` with no broker behind its address: the queue and the producer fill, then
    frames are dropped and counted; the process does not grow with the stream."""
    frames = _many(tardis_frames(*tardis), 12)  # 240,000 frames
    dead = f"127.0.0.1:{_free_port()}"
    with local_exchange(frames, Script(hold_until_subscribed=BOTH)) as ex:
        proc = subprocess.Popen([*WH, "capture", "--exchange", "binanceusdm", "--symbols", "BTCUSDT",
                                 "--bootstrap", dead, "--topic", "nowhere", "--queue", "2000", "--kafka-buffer", "5000",
                                 "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--progress", "0.5",
                                 "--flush-timeout", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        samples: list[tuple[int, float]] = []
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        deadline = time.monotonic() + 240
        while not ex.done.is_set() and time.monotonic() < deadline and proc.poll() is None:
            samples.append((len(ex.sent), _rss_mb(proc.pid)))
            time.sleep(0.2)
        assert ex.done.is_set(), (lines[-5:], proc.poll())
        end = time.monotonic() + 60  # the worker may still be reading what the socket holds
        while time.monotonic() < end and _frames_seen(lines) < len(frames):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=120)
    reader.join(5)
    lines += (rest or "").splitlines()
    warm = [rss for n, rss in samples if n >= 40_000]
    assert len(warm) >= 5, samples
    print(
        f"\n[capture] RSS {warm[0]:.0f} → {max(warm):.0f} MiB over {samples[-1][0] - 40_000:,} frames with Kafka down"
    )
    assert max(warm) - warm[0] < 25, samples  # MB: flat while 200,000 more frames go by
    summary = re.search(r"captured ([\d,]+) frames .* dropped \(queue full\) ([\d,]+); delivered ([\d,]+)", out)
    assert summary, out
    frames_n, dropped, delivered = (int(x.replace(",", "")) for x in summary.groups())
    assert frames_n == len(frames) and delivered == 0
    assert (
        dropped >= len(frames) - 2_000 - 5_000 - 1_000
    )  # all but the queue, the producer's buffer, the first gap rows
    assert proc.returncode == 1  # what was held and never delivered is an error, with its count
    assert any("did not reach Kafka" in line for line in lines)
    assert any("dropped" in line and "queue" in line for line in lines)  # progress lines while it ran
