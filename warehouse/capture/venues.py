"""Exchange stream formats: one raw frame of a public market-data stream → one wh record.

A venue knows its ccxt class (which opens the socket, subscribes, loads the markets and
paces requests), the name wh and Tardis give the exchange, and how its frames read:

    binanceusdm  → binance-futures   USDⓈ-M perpetuals and futures (wss://fstream.binance.com)
    binance      → binance           spot (wss://stream.binance.com:9443)

Frames become the wire records of `warehouse.ingest.kafka.wire` (JSON, times in ns):
top of book (`bookTicker`) → a quote, aggregate trades (`aggTrade`) → a trade whose `seq`
is the aggregate trade id. Binance numbers aggregate trades consecutively per symbol, so a
skipped id opens a gap event in wh.gaps through the sanitizer's sequence rule. A quote
keeps `seq` empty: `bookTicker`'s `u` is the order book's update id, which advances with
every depth change, not with every top-of-book frame — as a sequence it would open a gap
on nearly every quote. Event time is Binance's transaction time `T` (futures; spot frames
carry none, so there the receipt time is the event time); receipt time is stamped by the
worker when the frame arrives.

A frame that is not JSON, not an object, or lacks a field or has a field that is not a
finite number is `Malformed`: the worker sends it on as a reject with its raw text.
Control frames (subscription answers) are `None`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NS_PER_MS = 1_000_000
MAX_NS = 2**63 - 1
MAX_SYMBOL = 64


class Malformed(ValueError):
    """A data frame the venue's format does not allow; the message is the reason."""


@dataclass(frozen=True)
class Venue:
    ccxt_id: str  # class in ccxt.pro
    exchange: str  # wh's (and Tardis's) exchange name
    asset_class: str
    ws_key: str  # urls['api']['ws'][ws_key] is the stream endpoint (overridable: --ws-url)
    rest_host: str  # the REST host ccxt loads markets from (overridable: --rest-url)
    trades_stream: str  # Binance: aggTrade
    doc: str

    def kind(self, frame: Any) -> str | None:
        """quote | trade for a data frame; None for a control frame; Malformed otherwise."""
        if not isinstance(frame, dict):
            raise Malformed(f"frame is a JSON {type(frame).__name__}, not an object")
        event = frame.get("e")
        if event == "bookTicker" or (event is None and "b" in frame and "a" in frame and "s" in frame):
            return "quote"
        if event in ("aggTrade", "trade"):
            return "trade"
        if "id" in frame and ("result" in frame or "error" in frame):
            return None  # the answer to a SUBSCRIBE
        raise Malformed(f"unknown frame (event {event!r})")

    def record(self, kind: str, frame: dict[str, Any], received_ns: int) -> dict[str, Any]:
        """A data frame → the wire record (`type`, times in ns, exchange's own symbol)."""
        symbol = frame.get("s")
        if not isinstance(symbol, str) or not symbol or not symbol.isprintable() or len(symbol) > MAX_SYMBOL:
            raise Malformed(f"no symbol (field s: printable, 1 to {MAX_SYMBOL} characters)")
        ts = frame.get("T", frame.get("E"))
        timestamp = _int(ts, "T") * NS_PER_MS if ts is not None else received_ns
        if not 0 < timestamp < MAX_NS:
            raise Malformed(f"field T is not a time in milliseconds since 1970 ({str(ts)[:40]!r})")
        base = {"timestamp": timestamp, "received_at": received_ns, "exchange": self.exchange,
                "symbol": symbol, "asset_class": self.asset_class}  # fmt: skip
        if kind == "quote":
            return {"type": "quote", **base, "bid": _num(frame, "b"), "ask": _num(frame, "a"),
                    "bid_size": _num(frame, "B"), "ask_size": _num(frame, "A"), "seq": None}  # fmt: skip
        agg = _int(frame.get("a", frame.get("t")), "a")
        maker = frame.get("m")
        if not isinstance(maker, bool):
            raise Malformed("field m (buyer is maker) is not true/false")
        return {"type": "trade", **base, "trade_id": str(agg), "side": "sell" if maker else "buy",
                "price": _num(frame, "p"), "size": _num(frame, "q"), "seq": agg}  # fmt: skip

    def streams(self, market_ids: list[str]) -> list[str]:
        return [f"{m.lower()}@{s}" for m in market_ids for s in ("bookTicker", self.trades_stream)]


def _num(frame: dict[str, Any], key: str) -> float:
    v = frame.get(key)
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise Malformed(f"field {key} is missing or not a number")
    try:
        x = float(v)
    except (ValueError, OverflowError):
        raise Malformed(f"field {key} is not a number ({str(v)[:40]!r})") from None
    if not math.isfinite(x):
        raise Malformed(f"field {key} is not a finite number ({str(v)[:40]!r})")
    return x


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise Malformed(f"field {key} is missing or not an integer")
    try:
        return int(v)
    except (ValueError, OverflowError):
        raise Malformed(f"field {key} is not an integer ({str(v)[:40]!r})") from None


VENUES: dict[str, Venue] = {
    "binanceusdm": Venue("binanceusdm", "binance-futures", "crypto", "linear", "https://fapi.binance.com",
                         "aggTrade", "Binance USDⓈ-M futures (Tardis: binance-futures)"),
    "binance": Venue("binance", "binance", "crypto", "spot", "https://api.binance.com", "aggTrade",
                     "Binance spot (Tardis: binance)"),
}  # fmt: skip
ALIASES = {"binance-futures": "binanceusdm", "binance-spot": "binance"}


def venue(name: str) -> Venue:
    from warehouse.errors import ConfigError

    key = ALIASES.get(name, name)
    if key not in VENUES:
        raise ConfigError(f"exchange {name!r}: capture speaks {', '.join(sorted(VENUES))} "
                          f"({', '.join(f'{k} = {v}' for k, v in ALIASES.items())})")  # fmt: skip
    return VENUES[key]
