"""Exchange frames → wh records (warehouse/capture/venues.py), and the reconnect schedule."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.backoff import Backoff
from warehouse.capture.venues import Malformed, venue
from warehouse.errors import ConfigError

FUT = venue("binanceusdm")
NOW = 1_764_000_000_123_456_789


def test_futures_frames_as_binance_documents_them() -> None:
    quote = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
             "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}  # fmt: skip
    assert FUT.kind(quote) == "quote"
    assert FUT.record("quote", quote, NOW) == {
        "type": "quote", "timestamp": 1568014460891_000_000, "received_at": NOW, "exchange": "binance-futures",
        "symbol": "BNBUSDT", "asset_class": "crypto", "bid": 25.3519, "ask": 25.3652, "bid_size": 31.21,
        "ask_size": 40.66, "seq": None,
    }  # fmt: skip
    trade = {"e": "aggTrade", "E": 123456789, "s": "BTCUSDT", "a": 5933014, "p": "0.001", "q": "100", "f": 100,
             "l": 105, "T": 123456785, "m": True}  # fmt: skip
    assert FUT.kind(trade) == "trade"
    rec = FUT.record("trade", trade, NOW)
    assert (rec["trade_id"], rec["seq"], rec["side"], rec["price"], rec["size"], rec["timestamp"]) == (
        "5933014",
        5933014,
        "sell",
        0.001,
        100.0,
        123456785_000_000,
    )  # the buyer made: the taker sold
    assert FUT.kind({"result": None, "id": 3}) is None  # a SUBSCRIBE answer


def test_spot_book_ticker_has_no_event_time_so_receipt_time_is_used() -> None:
    spot = venue("binance")
    frame = {"u": 7488717758, "s": "BTCUSDT", "b": "28621.74", "B": "1.43", "a": "28621.75", "A": "2.52"}
    rec = spot.record(spot.kind(frame) or "", frame, NOW)
    assert rec["exchange"] == "binance" and rec["timestamp"] == rec["received_at"] == NOW


@pytest.mark.parametrize(("frame", "words"), [
    ([1, 2], "a JSON list"),
    ({"e": "depthUpdate"}, "unknown frame"),
    ({"e": "bookTicker", "s": "X", "b": "1", "a": "2", "B": "1"}, "field A is missing"),
    ({"e": "bookTicker", "s": "X", "b": "Infinity", "a": "2", "B": "1", "A": "1"}, "not a finite number"),
    ({"e": "bookTicker", "s": "", "b": "1", "a": "2", "B": "1", "A": "1"}, "no symbol"),
    ({"e": "bookTicker", "s": "X\n", "b": "1", "a": "2", "B": "1", "A": "1"}, "no symbol"),
    ({"e": "aggTrade", "s": "X", "a": "x1", "p": "1", "q": "1", "T": 1, "m": True}, "field a is not an integer"),
    ({"e": "aggTrade", "s": "X", "a": 1, "p": "1", "q": "1", "T": 1, "m": "yes"}, "field m"),
    ({"e": "aggTrade", "s": "X", "a": 1, "p": True, "q": "1", "T": 1, "m": False}, "field p"),
])  # fmt: skip
def test_malformed_frames_say_why(frame: object, words: str) -> None:
    with pytest.raises(Malformed, match=words):
        kind = FUT.kind(frame)
        assert isinstance(frame, dict) and kind is not None
        FUT.record(kind, frame, NOW)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=6),
    max_leaves=20,
)
KEYS = st.sampled_from(["e", "s", "b", "a", "B", "A", "T", "E", "p", "q", "m", "u", "id", "result"])
FRAMES = JSON | st.dictionaries(KEYS, JSON | st.sampled_from(["bookTicker", "aggTrade", "1.5", "BTCUSDT"]), max_size=12)


@settings(max_examples=400, deadline=None)
@given(FRAMES)
def test_any_json_frame_is_a_record_a_control_frame_or_malformed(frame: object) -> None:
    """Whatever an exchange (or an attacker in between) sends: never another exception."""
    frame = json.loads(json.dumps(frame))
    try:
        kind = FUT.kind(frame)
        if kind is not None:
            rec = FUT.record(kind, frame, NOW)  # type: ignore[arg-type]
            assert rec["type"] == kind and isinstance(rec["symbol"], str) and rec["symbol"]
    except Malformed as exc:
        assert str(exc)


def test_backoff_doubles_to_the_cap_plus_jitter() -> None:
    b, rng = Backoff(base=1.0, cap=60.0, jitter=1.0), random.Random(1)
    for n, floor in enumerate([1, 2, 4, 8, 16, 32, 60, 60, 60]):
        assert floor <= b.delay(n, rng) <= floor + 1.0
    assert Backoff(0.5, 5.0, 0.0).delay(10_000, rng) == 5.0  # no overflow far out


def test_unknown_exchange_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="capture speaks binance, binanceusdm"):
        venue("kraken")
    assert venue("binance-futures") is FUT


def test_a_symbol_too_long_for_a_key_is_malformed() -> None:
    frame = {"e": "bookTicker", "s": "X" * 65, "b": "1", "a": "2", "B": "1", "A": "1", "T": 1}
    with pytest.raises(Malformed, match="1 to 64 characters"):
        FUT.record("quote", frame, NOW)
    with pytest.raises(Malformed, match="not a number"):
        FUT.record("quote", {**frame, "s": "X", "b": 10**400}, NOW)


def test_a_bad_kafka_setting_stops_the_worker_before_any_socket_opens() -> None:
    import asyncio

    from warehouse.capture.worker import CaptureWorker
    from warehouse.errors import KafkaError

    worker = CaptureWorker(FUT, ["BTCUSDT"], topic="t", ws_url="ws://127.0.0.1:9/ws", rest_url="http://127.0.0.1:9",
                           kafka_config={"bootstrap.servers": "127.0.0.1:9", "queue.buffering.max.kbytes": "lots"})  # fmt: skip
    with pytest.raises(KafkaError, match="cannot create the Kafka producer"):
        asyncio.run(worker.run(asyncio.Event()))
