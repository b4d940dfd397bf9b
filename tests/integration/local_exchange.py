"""A local exchange for the capture tests: Binance USDⓈ-M futures' public stream format.

One port serves both what a client needs from Binance: the REST `GET /fapi/v1/exchangeInfo`
(ccxt loads markets from it) and the market-data WebSocket at `/ws/<n>`, which answers
`{"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", …], "id": N}` with
`{"result": null, "id": N}` and then pushes the subscribed streams' frames exactly as
Binance documents them:

    {"e":"bookTicker","u":…,"E":ms,"T":ms,"s":"BTCUSDT","b":"9681.92","B":"0.67","a":"9682","A":"0.84"}
    {"e":"aggTrade","E":ms,"a":42377944,"s":"BTCUSDT","p":"9682","q":"0.132","f":…,"l":…,"T":ms,"m":false}

The frames come from the Tardis sample day (quotes and trades of BTCUSDT, merged in event
time; a Tardis trade id becomes the aggregate trade id), so what a capture stores can be
compared with the same rows imported from the files. Faults are scripted per connection:
close the socket after frame k (frames that go by meanwhile are gone, as on a real exchange),
refuse the next dials, stall (send nothing, keep the socket open), send malformed frames,
skip aggregate ids. Every dial is timestamped (`dials`), for the backoff checks.
"""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

WS_STREAMS = ("bookTicker", "aggTrade")


def tardis_frames(quotes: Path, trades: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The sample day as Binance frames, in event-time order (quotes before trades on ties)."""
    out: list[tuple[int, int, dict[str, Any]]] = []
    with quotes.open(newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            ms = int(r["timestamp"]) // 1000
            out.append((ms, 0, {"e": "bookTicker", "u": 400_900_000 + 7 * i, "E": ms + 2, "T": ms, "s": r["symbol"],
                                "b": r["bid_price"], "B": r["bid_amount"],
                                "a": r["ask_price"], "A": r["ask_amount"]}))  # fmt: skip
            if limit and i + 1 >= limit:
                break
    with trades.open(newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            ms, tid = int(r["timestamp"]) // 1000, int(r["id"])
            out.append((ms, 1, {"e": "aggTrade", "E": ms + 1, "a": tid, "s": r["symbol"], "p": r["price"],
                                "q": r["amount"], "f": tid, "l": tid, "T": ms, "m": r["side"] == "sell"}))  # fmt: skip
            if limit and i + 1 >= limit:
                break
    out.sort(key=lambda t: (t[0], t[1]))
    return [f for _, _, f in out]


def stream_of(frame: dict[str, Any]) -> str:
    return f"{str(frame.get('s', '')).lower()}@{frame.get('e')}"


def exchange_info(symbols: list[str]) -> dict[str, Any]:
    """Enough of /fapi/v1/exchangeInfo for a client to know the perpetuals."""
    return {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
        "assets": [],
        "symbols": [
            {
                "symbol": s,
                "pair": s,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "baseAsset": s[:-4],
                "quoteAsset": s[-4:],
                "marginAsset": s[-4:],
                "pricePrecision": 2,
                "quantityPrecision": 3,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "settlePlan": 0,
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                    {"filterType": "MIN_NOTIONAL", "notional": "5"},
                ],
                "orderTypes": ["LIMIT", "MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            }
            for s in symbols
        ],
    }


@dataclass
class Script:
    """What the exchange does to the connections, in order of their dials (1-based).

    drop: stream → close the first connection carrying it abruptly after sending it this many
        frames (the frames that go by until the client subscribes again are lost to it);
    refuse: dial numbers answered with HTTP 503 instead of a WebSocket;
    error_subscribe: connection numbers whose SUBSCRIBE is answered with an error (socket stays open);
    stall: stream → after this many frames on the first connection carrying it, send nothing
        on that connection for `stall_s` (the socket stays open);
    malformed: frame positions (in the replay) before which a malformed frame is sent;
    skip_ids: aggregate trade ids never sent (the stream jumps over them);
    rate: frames per second (0: as fast as the socket takes them).
    """

    drop: dict[str, int] = field(default_factory=dict)
    refuse: set[int] = field(default_factory=set)
    error_subscribe: set[int] = field(default_factory=set)
    stall: dict[str, int] = field(default_factory=dict)
    stall_s: float = 0.0
    malformed: dict[int, bytes] = field(default_factory=dict)
    skip_ids: set[int] = field(default_factory=set)
    rate: float = 0.0
    hold_until_subscribed: tuple[str, ...] = ()  # start the replay only once all of these streams are subscribed


class LocalExchange:
    """The replay runs once over all frames; each connection gets the frames of the streams it
    subscribed. Counters: `dials` (monotonic time of each handshake, refused ones included),
    `sent` (frames delivered per stream), `lost` (frames dropped while nobody was connected)."""

    def __init__(self, frames: list[dict[str, Any]], script: Script | None = None) -> None:
        self.frames = frames
        self.script = script or Script()
        self.dials: list[float] = []
        self.sent: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self.malformed_sent = 0
        self.drops: list[float] = []  # monotonic time of each scripted drop
        self._done_faults: set[str] = set()
        self.port = 0
        self.done = threading.Event()
        self._subs: dict[Any, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._conn_no = 0
        self._stalled: set[Any] = set()
        self._pos = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalExchange:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True, name="local-exchange")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the local exchange did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    # -- server -----------------------------------------------------------------------------------
    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._http, ping_interval=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            replay = asyncio.create_task(self._replay())
            await self._stop.wait()
            replay.cancel()

    def _http(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?")[0]
        if "/ws" in path:  # /ws/<n>, and the /public/ws and /market/ws routes of the current API
            self.dials.append(time.monotonic())
            if len(self.dials) in self.script.refuse:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try again later\n")
            return None  # the WebSocket handshake goes on
        if path.endswith("/exchangeInfo"):
            symbols = sorted({str(f["s"]) for f in self.frames if "s" in f})
            resp = connection.respond(HTTPStatus.OK, json.dumps(exchange_info(symbols)))
            resp.headers["Content-Type"] = "application/json"
            return resp
        if path.endswith("/ping") or path.endswith("/time"):
            resp = connection.respond(HTTPStatus.OK, json.dumps({"serverTime": int(time.time() * 1000)}))
            resp.headers["Content-Type"] = "application/json"
            return resp
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _handler(self, ws: Any) -> None:
        self._conn_no += 1
        no = self._conn_no
        self._subs[ws] = set()
        ws.wh_no, ws.wh_count = no, {}
        try:
            async for text in ws:
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                if msg.get("method") == "SUBSCRIBE" and no in self.script.error_subscribe:
                    await ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": msg.get("id")}))
                elif msg.get("method") == "SUBSCRIBE":
                    self._subs[ws] |= {str(p) for p in msg.get("params", [])}
                    await ws.send(json.dumps({"result": None, "id": msg.get("id")}))
                elif msg.get("method") == "UNSUBSCRIBE":
                    self._subs[ws] -= {str(p) for p in msg.get("params", [])}
                    await ws.send(json.dumps({"result": None, "id": msg.get("id")}))
        except Exception:
            pass
        finally:
            self._subs.pop(ws, None)

    def _subscribed(self) -> set[str]:
        return set().union(*self._subs.values()) if self._subs else set()

    async def _replay(self) -> None:
        s = self.script
        while s.hold_until_subscribed and not set(s.hold_until_subscribed) <= self._subscribed():
            await asyncio.sleep(0.01)
        gap = 1.0 / s.rate if s.rate else 0.0
        while self._pos < len(self.frames):
            frame = self.frames[self._pos]
            self._pos += 1
            if frame.get("e") == "aggTrade" and frame.get("a") in s.skip_ids:
                self.lost.append(frame)
                continue
            stream = stream_of(frame)
            targets = [ws for ws, subs in list(self._subs.items()) if stream in subs]
            if not targets:  # nobody listening (a client away): the market goes on without it
                self.lost.append(frame)
                await asyncio.sleep(0.002)
                continue
            if self._pos - 1 in s.malformed:
                for ws in targets:
                    await self._send(ws, s.malformed[self._pos - 1])
                self.malformed_sent += 1
            delivered = False
            for ws in targets:
                ws.wh_count[stream] = ws.wh_count.get(stream, 0) + 1
                n = ws.wh_count[stream]
                if s.stall.get(stream) == n - 1 and f"stall {stream}" not in self._done_faults:
                    self._done_faults.add(f"stall {stream}")
                    self._stalled.add(ws)
                    asyncio.get_running_loop().call_later(s.stall_s, self._stalled.discard, ws)
                if ws in self._stalled:  # a stalled connection: frames for it go nowhere
                    continue
                await self._send(ws, json.dumps(frame, separators=(",", ":")))
                delivered = True
                if s.drop.get(stream) == n and f"drop {stream}" not in self._done_faults:
                    self._done_faults.add(f"drop {stream}")
                    self._subs.pop(ws, None)
                    self.drops.append(time.monotonic())
                    ws.transport.abort()  # no close frame: the socket just dies
            (self.sent if delivered else self.lost).append(frame)
            if not delivered:
                await asyncio.sleep(0.002)
            elif gap:
                await asyncio.sleep(gap)
            elif self._pos % 100 == 0:
                await asyncio.sleep(0)
        self.done.set()

    async def _send(self, ws: Any, data: Any) -> None:
        try:
            await ws.send(data)
        except Exception:
            self._subs.pop(ws, None)


@contextmanager
def local_exchange(frames: list[dict[str, Any]], script: Script | None = None) -> Iterator[LocalExchange]:
    ex = LocalExchange(frames, script).start()
    try:
        yield ex
    finally:
        ex.stop()
