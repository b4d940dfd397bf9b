"""The producer: ticks as JSON messages, key = symbol, idempotent, every delivery error counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from warehouse.errors import KafkaError
from warehouse.ingest.decode import FIELDS
from warehouse.records import Kind, SourceBatch


def encode(rows: pl.DataFrame, kind: Kind) -> pl.Series:
    """Rows in the internal layout → JSON messages (vectorized), one per row."""
    fields = [f for f in FIELDS[kind] if f in rows.columns]
    return rows.select(pl.struct(pl.lit(str(kind)).alias("type"), *fields).struct.json_encode()).to_series()


@dataclass
class FeedReport:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    malformed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


MALFORMED_SAMPLES = (b"{not json", b'{"type":"quote","bid":NaN}', b"", b"[1,2,3]", b'{"type":"trade","price":1e400}')


def produce(
    bootstrap: str,
    topic: str,
    batches: Iterable[SourceBatch],
    *,
    extra_config: dict[str, str] | None = None,
    rate: float | None = None,
    malformed_every: int = 0,
    on_progress: Callable[[FeedReport], None] | None = None,
) -> FeedReport:
    """Publish ticks, key = symbol, idempotent producer; every delivery error is counted."""
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
    try:
        for batch in batches:
            rows = batch.rows.drop([c for c in batch.rows.columns if c.startswith("_")])
            values = encode(rows, batch.kind).to_list()
            keys = rows.get_column("symbol").to_list()
            for key, value in zip(keys, values, strict=True):
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.05)  # queue full: wait for deliveries, never drop
                    except KafkaException as exc:
                        raise KafkaError(f"produce failed: {exc}") from exc
                n += 1
                report.produced += 1
                if malformed_every and n % malformed_every == 0:
                    bad = MALFORMED_SAMPLES[(n // malformed_every) % len(MALFORMED_SAMPLES)]
                    producer.produce(topic, value=bad, key=key, on_delivery=delivered)
                    report.produced += 1
                    report.malformed += 1
                if rate:
                    ahead = n / rate - (time.perf_counter() - start)
                    if ahead > 0.002:  # sleep in ≥ 2 ms steps: a sleep per tick would cap the rate itself
                        producer.poll(0)
                        time.sleep(ahead)
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
