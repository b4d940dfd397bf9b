"""The producer: ticks as Kafka messages, key = symbol, idempotent, every delivery error counted.

Two encodings, both decoded by the same consumer (warehouse/ingest/kafka/wire.py):
`json` — one tick per message, the interoperable default (kcat, any language); `arrow` — many
ticks of one instrument per message, an Arrow IPC stream of the internal layout (`wh-type`
header: quote | trade; `content-type` header: application/vnd.apache.arrow.stream), for
rates a message per tick cannot reach (one Python object per message caps a consumer at
~170 k messages/s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from warehouse.errors import KafkaError
from warehouse.ingest.decode import FIELDS
from warehouse.ingest.kafka.wire import ARROW_CONTENT_TYPE
from warehouse.records import Kind, SourceBatch


def encode(rows: pl.DataFrame, kind: Kind) -> pl.Series:
    """Rows in the internal layout → JSON messages (vectorized), one per row."""
    fields = [f for f in FIELDS[kind] if f in rows.columns]
    return rows.select(pl.struct(pl.lit(str(kind)).alias("type"), *fields).struct.json_encode()).to_series()


def encode_arrow(rows: pl.DataFrame, kind: Kind, per_message: int) -> list[tuple[str, bytes, int]]:
    """Rows → (key, Arrow IPC stream bytes, ticks) per message: ≤ `per_message` ticks of one
    instrument each, in the rows' order (one instrument's messages stay in one partition)."""
    import pyarrow as pa

    fields = [f for f in FIELDS[kind] if f in rows.columns]
    out: list[tuple[str, bytes, int]] = []
    for part in rows.select(fields).partition_by("symbol", maintain_order=True):
        key = str(part.item(0, "symbol"))
        table = part.to_arrow()
        for start in range(0, table.num_rows, per_message):
            chunk = table.slice(start, per_message)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, chunk.schema) as writer:
                writer.write_table(chunk)
            out.append((key, sink.getvalue().to_pybytes(), chunk.num_rows))
    return out


@dataclass
class FeedReport:
    produced: int = 0  # messages
    ticks: int = 0  # ticks in them (= produced for JSON)
    delivered: int = 0
    failed: int = 0
    malformed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


MALFORMED_SAMPLES = (b"{not json", b'{"type":"quote","bid":NaN}', b"", b"[1,2,3]", b'{"type":"trade","price":1e400}')
# …and for the Arrow encoding: a message that says it is Arrow and is not (a cut IPC stream)
MALFORMED_ARROW = b"\xff\xff\xff\xff\x10\x01\x00\x00cut"


def produce(
    bootstrap: str,
    topic: str,
    batches: Iterable[SourceBatch],
    *,
    extra_config: dict[str, str] | None = None,
    rate: float | None = None,
    malformed_every: int = 0,
    on_progress: Callable[[FeedReport], None] | None = None,
    encoding: str = "json",
    ticks_per_message: int = 1000,
) -> FeedReport:
    """Publish ticks, key = symbol, idempotent producer; every delivery error is counted.

    encoding `json`: one tick per message; `arrow`: up to `ticks_per_message` ticks of one
    instrument per message (headers say so). `malformed_every` N: a malformed message after
    every N ticks (Arrow: after the message that crosses a multiple of N)."""
    from confluent_kafka import KafkaException, Producer

    report = FeedReport()
    lock = threading.Lock()

    def delivered(err: Any, msg: Any) -> None:
        with lock:
            if err is None:
                report.delivered += 1
            else:
                report.failed += 1
                report.errors[str(err)] = report.errors.get(str(err), 0) + 1

    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        **(extra_config or {}),
    }
    producer = Producer(conf)
    start = time.perf_counter()
    n = 0

    def send(value: bytes, key: str, headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.05)  # queue full: wait for deliveries, never drop
            except KafkaException as exc:
                raise KafkaError(f"produce failed: {exc}") from exc

    def pace(n: int) -> None:
        if rate:
            ahead = n / rate - (time.perf_counter() - start)
            if ahead > 0.002:  # sleep in ≥ 2 ms steps: a sleep per tick would cap the rate itself
                producer.poll(0)
                time.sleep(ahead)

    if encoding not in ("json", "arrow"):
        raise KafkaError(f"encoding {encoding!r}: json or arrow")
    try:
        for batch in batches:
            rows = batch.rows.drop([c for c in batch.rows.columns if c.startswith("_")])
            if encoding == "arrow":
                headers: list[tuple[str, str | bytes | None]] = [("content-type", ARROW_CONTENT_TYPE),
                                                                 ("wh-type", str(batch.kind).encode())]  # fmt: skip
                for key, value, ticks in encode_arrow(rows, batch.kind, ticks_per_message):
                    send(value, key, headers)
                    report.produced += 1
                    report.ticks += ticks
                    if malformed_every and (n + ticks) // malformed_every > n // malformed_every:
                        send(MALFORMED_ARROW, key, headers)
                        report.produced += 1
                        report.malformed += 1
                    n += ticks
                    pace(n)
                producer.poll(0)
                if on_progress is not None:
                    on_progress(report)
                continue
            values = encode(rows, batch.kind).to_list()
            keys = rows.get_column("symbol").to_list()
            for key, value in zip(keys, values, strict=True):
                send(value, key)
                n += 1
                report.produced += 1
                report.ticks += 1
                if malformed_every and n % malformed_every == 0:
                    bad = MALFORMED_SAMPLES[(n // malformed_every) % len(MALFORMED_SAMPLES)]
                    send(bad, key)
                    report.produced += 1
                    report.malformed += 1
                pace(n)
            producer.poll(0)
            if on_progress is not None:
                on_progress(report)
        remaining = producer.flush(60)
        if remaining:
            report.failed += remaining
            report.errors["not delivered within 60 s"] = remaining
    finally:
        report.seconds = time.perf_counter() - start
    return report
