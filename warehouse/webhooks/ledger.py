"""Order events ↔ ledger rows: the simulator's orders and fills as signed webhook events
(`wh replay --webhook URL`), and the writer that stores events from the queue topic in
wh.orders / wh.fills (`wh webhooks ingest`).

Event bodies (JSON; times in integer nanoseconds since the epoch, UTC):

    {"event_id": "fill:<fill_id>", "type": "fill", "fill": {<a wh.fills row>}}
    {"event_id": "order:<order_id>:<updated_at>:<status>", "type": "order", "order": {<a wh.orders row>}}

Stored exactly once however often an event arrives: a fill by its fill_id (a stored id is
skipped), an order as its newest state (a version no newer than the stored one is skipped;
a newer one replaces it). Writes are idempotent, so the consumer commits its offsets after
the engines hold the batch: a crash in between re-reads events that change nothing.
Other event types (margin alerts, …) are counted and left on the topic.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.backoff import backoff
from warehouse.records import FILL_SCHEMA, ORDER_SCHEMA
from warehouse.sql import queries
from warehouse.sql.engines import Engine
from warehouse.webhooks.signing import headers

_TIMES = {"order": ("created_at", "updated_at"), "fill": ("timestamp",)}
_SCHEMAS = {"order": ORDER_SCHEMA, "fill": FILL_SCHEMA}


def _ns(value: Any) -> int:
    return int(pa.scalar(value, pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py())


def events(tables: dict[str, pa.Table]) -> list[tuple[str, bytes]]:
    """(event_id, body) for every order (its final state) and fill of a ledger, in time order."""
    out: list[tuple[int, str, bytes]] = []
    for kind, name in (("order", "orders"), ("fill", "fills")):
        for row in tables[name].to_pylist():
            for col in _TIMES[kind]:
                row[col] = _ns(row[col])
            when = row["updated_at"] if kind == "order" else row["timestamp"]
            eid = (f"order:{row['order_id']}:{row['updated_at']}:{row['status']}" if kind == "order"
                   else f"fill:{row['fill_id']}")  # fmt: skip
            out.append((when, eid, json.dumps({"event_id": eid, "type": kind, kind: row}, sort_keys=True).encode()))
    out.sort(key=lambda e: (e[0], e[1]))
    return [(eid, body) for _, eid, body in out]


@dataclass
class SendReport:
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def send(url: str, secret: bytes, items: Iterable[tuple[str, bytes]], *, attempts: int = 6, base_s: float = 0.25,
         max_s: float = 8.0, timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> SendReport:  # fmt: skip
    """POST each event, signed; a connection error, a 5xx, 409 (in progress) or 429 is retried
    after min(max_s, base_s · 2ⁿ) plus up to as much again of random jitter (senders that failed
    together do not retry together). Another 4xx is not retried: counted failed."""
    report = SendReport()
    rng = random.Random()
    for _, body in items:
        for attempt in range(attempts):
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers=headers(secret, int(time.time()), body))  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as r:
                    answer = r.read()
                try:
                    status = json.loads(answer or b"{}").get("status")
                except (ValueError, AttributeError):
                    status = None
                report.sent += status == "accepted"
                report.duplicates += status == "duplicate"
                if status not in ("accepted", "duplicate"):
                    report.errors["2xx without a known status"] = report.errors.get("2xx without a known status", 0) + 1
                break
            except urllib.error.HTTPError as exc:
                exc.close()
                reason = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in (409, 429):
                    report.failed += 1
                    report.errors[reason] = report.errors.get(reason, 0) + 1
                    break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = type(getattr(exc, "reason", exc)).__name__
            report.errors[reason] = report.errors.get(reason, 0) + 1
            if attempt == attempts - 1:
                report.failed += 1
                break
            report.retries += 1
            delay = backoff(attempt, base_s, max_s, rng, jitter=0.0)
            sleep(delay + rng.uniform(0, delay))  # jitter up to the delay itself: a burst of senders spreads wide
    return report


@dataclass
class Decoded:
    orders: pa.Table
    fills: pa.Table
    other: int = 0  # events of other types (not ledger rows)
    malformed: int = 0


def decode(values: list[bytes]) -> Decoded:
    """Event bodies (as the receiver queued them) → order and fill rows. An event that can never
    be stored (a required field missing, a value of the wrong type or size) is counted as
    malformed and skipped: it must not stop the writer on every restart."""
    rows: dict[str, list[dict[str, Any]]] = {"order": [], "fill": []}
    other = malformed = 0
    for value in values:
        try:
            event = json.loads(value)
            kind = event["type"]
            if kind not in rows:
                other += 1
                continue
            row = dict(event[kind])
            picked = {f.name: row.get(f.name) for f in _SCHEMAS[kind]}
            if any(picked[f.name] is None for f in _SCHEMAS[kind] if not f.nullable):
                malformed += 1
                continue
            rows[kind].append(picked)
        except (ValueError, KeyError, TypeError, RecursionError):
            malformed += 1
    tables = {}
    for kind, schema in _SCHEMAS.items():
        try:
            tables[kind] = pa.Table.from_pylist(rows[kind], schema=_int_times(schema)).cast(schema)
        except _BAD_VALUE:
            good = []
            for r in rows[kind]:
                try:
                    pa.Table.from_pylist([r], schema=_int_times(schema)).cast(schema)
                    good.append(r)
                except _BAD_VALUE:
                    malformed += 1
            tables[kind] = pa.Table.from_pylist(good, schema=_int_times(schema)).cast(schema)
    return Decoded(tables["order"], tables["fill"], other, malformed)


# what a value of the wrong type or size raises on its way into Arrow
_BAD_VALUE = (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError)
# order states in the order they can follow each other: at one updated_at, the later one wins
_STATUS_RANK = {"queued": 0, "new": 1, "partially_filled": 2, "filled": 3, "cancelled": 3, "rejected": 3}


def _version(df: pl.DataFrame) -> pl.DataFrame:
    """(_t, _r, _f): an order version's place in one total order — state time, how far along
    the state is, filled quantity."""
    return df.with_columns(
        pl.col("updated_at").dt.epoch("ns").alias("_t"),
        pl.col("status").replace_strict(_STATUS_RANK, default=1, return_dtype=pl.Int8).alias("_r"),
        pl.col("filled_qty").alias("_f"),
    )


def _int_times(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.int64(), f.nullable) if pa.types.is_timestamp(f.type) else f
                      for f in schema])  # fmt: skip


def store(engine: Engine, decoded: Decoded) -> tuple[int, int]:
    """Idempotent: (new fills stored, orders inserted or brought to a newer state)."""
    fills = decoded.fills
    with engine.transaction():
        new_fills = 0
        if fills.num_rows:
            ids = pc.unique(fills.column("fill_id")).to_pylist()
            stored = set(queries.load("existing_fills", internal=True).run(engine, {"ids": ids})
                         .column("fill_id").to_pylist())  # fmt: skip
            df = pl.from_arrow(fills)
            assert isinstance(df, pl.DataFrame)
            fresh = df.filter(~pl.col("fill_id").is_in(list(stored))).unique(
                "fill_id", keep="first", maintain_order=True
            )
            if fresh.height:
                engine.insert("wh.fills", fresh.to_arrow().cast(FILL_SCHEMA))
            new_fills = fresh.height
        changed = 0
        if decoded.orders.num_rows:
            df = pl.from_arrow(decoded.orders)
            assert isinstance(df, pl.DataFrame)
            newest = _version(df).sort("_t", "_r", "_f", maintain_order=True).unique("order_id", keep="last",
                                                                                      maintain_order=True)  # fmt: skip
            ids = newest["order_id"].to_list()
            stored_orders = pl.from_arrow(queries.load("order_versions", internal=True).run(engine, {"ids": ids}))
            assert isinstance(stored_orders, pl.DataFrame)
            was = (_version(stored_orders).sort("_t", "_r", "_f").unique("order_id", keep="last")
                   .select("order_id", pl.col("_t").alias("_st"), pl.col("_r").alias("_sr"), pl.col("_f").alias("_sf")))  # fmt: skip
            same_t = pl.col("_t") == pl.col("_st")
            ahead = newest.join(was, on="order_id", how="left").filter(
                pl.col("_st").is_null() | (pl.col("_t") > pl.col("_st")) | (same_t & (pl.col("_r") > pl.col("_sr")))
                | (same_t & (pl.col("_r") == pl.col("_sr")) & (pl.col("_f") > pl.col("_sf")))
            )  # fmt: skip
            if ahead.height:
                engine.delete_in("wh.orders", "order_id", ahead["order_id"].to_list())
                engine.insert("wh.orders", ahead.select(ORDER_SCHEMA.names).to_arrow().cast(ORDER_SCHEMA))
            changed = ahead.height
    return new_fills, changed


@dataclass
class WriterStats:
    events: int = 0
    fills: int = 0
    orders: int = 0
    other: int = 0
    malformed: int = 0
    batches: int = 0


def run_writer(settings: Any, bootstrap: str, topic: str, group: str, engines: list[str], *,
               batch_events: int = 5_000, batch_seconds: float = 1.0, stop_when_idle: float | None = None,
               on_batch: Callable[[WriterStats], None] | None = None) -> WriterStats:  # fmt: skip
    """Consume the event topic into the ledger of `engines`; offsets committed after every
    engine stored the batch (the writes are idempotent: a batch read again changes nothing)."""
    from confluent_kafka import Consumer

    from warehouse.sql.engines import open_engine
    from warehouse.sql.migrate import migrate

    for name in engines:
        with open_engine(name, settings) as eng:
            migrate(eng)
    consumer = Consumer({"bootstrap.servers": bootstrap, **settings.kafka_config(), "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": "3"})  # fmt: skip
    stats = WriterStats()
    started = time.monotonic()
    assigned: list[float] = []  # idle time counts from the first assignment (joining takes seconds)

    def on_assign(c: Any, partitions: list[Any]) -> None:
        assigned.append(time.monotonic())

    consumer.subscribe([topic], on_assign=on_assign)
    last = started
    try:
        while True:
            msgs = [m for m in consumer.consume(num_messages=batch_events, timeout=batch_seconds) if m.error() is None]
            if not msgs:
                if stop_when_idle is not None:
                    since = max(last, assigned[-1]) if assigned else started
                    limit = stop_when_idle if assigned else max(60.0, stop_when_idle)
                    if time.monotonic() - since >= limit:
                        break
                continue
            decoded = decode([m.value() or b"" for m in msgs])
            for name in engines:
                with open_engine(name, settings) as eng:
                    fills, orders = store(eng, decoded)
            stats.events += len(msgs)
            stats.fills += fills
            stats.orders += orders
            stats.other += decoded.other
            stats.malformed += decoded.malformed
            stats.batches += 1
            consumer.commit(asynchronous=False)
            last = time.monotonic()
            if on_batch is not None:
                on_batch(stats)
    finally:
        consumer.close()
    return stats
