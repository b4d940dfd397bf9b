"""Kafka: an embedded broker, the JSON tick producer, and vectorized decoding of messages.

Wire format: one tick per message, JSON, key = symbol (all ticks of a symbol land in one
partition, in order). Fields are the internal names plus `type` ("quote" | "trade"):

    {"type":"quote","timestamp":1582329601096000000,"received_at":…,"exchange":"binance",
     "symbol":"BTCUSDT","asset_class":"crypto","bid":9681.92,"ask":9682.0,
     "bid_size":0.67,"ask_size":0.84,"seq":17}

Times are integer nanoseconds since the epoch (UTC). Decoding is vectorized with polars
(`json_path_match` finds rows that are JSON objects with a type, `json_decode` reads
them as text, `decode` types them with the same rules as files); a message that is not
valid JSON (NaN, Infinity and 1e400 are not valid JSON numbers) is a `malformed` reject
keeping its raw bytes, its topic/partition and offset.
"""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.config import Settings, check_bootstrap
from warehouse.errors import ConfigError, KafkaError
from warehouse.ingest.decode import FIELDS, Mapping, decode
from warehouse.records import Kind, SourceBatch, bounded_raw


def bootstrap_servers(settings: Settings, explicit: str | None = None) -> str:
    """--bootstrap, else WH_KAFKA_BOOTSTRAP, else the address `wh broker` left in WH_HOME."""
    if explicit:
        return check_bootstrap(explicit)  # no user:password@ in it: librdkafka would log it
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    if settings.broker_file.is_file():
        addr = settings.broker_file.read_text().strip()
        if addr:
            return addr
    raise ConfigError(
        "no Kafka cluster: start one with `wh broker` (in another terminal) or set WH_KAFKA_BOOTSTRAP"
    )


# -- the embedded broker --------------------------------------------------------------


class MockBroker:
    """librdkafka's mock cluster: real Kafka protocol on 127.0.0.1, in this process.

    Measured limits: ~5 MB kept per partition (older messages are dropped), topics are
    auto-created with 4 partitions, CreateTopics times out. Fine for demos and tests;
    use a real cluster (WH_KAFKA_BOOTSTRAP) for volume.
    """

    def __init__(self, brokers: int = 1) -> None:
        from confluent_kafka import Producer

        self._client = Producer({"test.mock.num.brokers": brokers, "log_level": 3})
        md = self._client.list_topics(timeout=10)
        b = md.brokers[min(md.brokers)]
        self.bootstrap = f"{b.host}:{b.port}"

    def close(self) -> None:
        self._client.flush(1)


class PortForwarder:
    """Accepts on a chosen port and pipes to the broker (the mock picks its own port).

    Kafka clients bootstrap here, then follow the broker's advertised address.
    """

    def __init__(self, port: int, target: str) -> None:
        import socket

        self.target = target.rsplit(":", 1)
        self.sock = socket.create_server(("127.0.0.1", port))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


# -- encoding and the producer --------------------------------------------------------


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
                    if ahead > 0:
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


# -- decoding -------------------------------------------------------------------------


def _decode_json(values: pl.Series, dtype: pl.Struct) -> tuple[pl.Series, np.ndarray]:
    """json_decode that isolates the rows it cannot read (bisection, rare)."""
    try:
        return values.str.json_decode(dtype=dtype), np.zeros(values.len(), dtype=bool)
    except pl.exceptions.PolarsError:
        if values.len() <= 16:
            parts, bad = [], np.zeros(values.len(), dtype=bool)
            for i in range(values.len()):
                one = values.slice(i, 1)
                try:
                    parts.append(one.str.json_decode(dtype=dtype))
                except pl.exceptions.PolarsError:
                    parts.append(pl.Series(values.name, [None], dtype=dtype))
                    bad[i] = True
            return pl.concat(parts), bad
        mid = values.len() // 2
        a, abad = _decode_json(values.slice(0, mid), dtype)
        b, bbad = _decode_json(values.slice(mid), dtype)
        return pl.concat([a, b]), np.concatenate([abad, bbad])


# the wire schema: `type` plus every quote and trade field, times as int64 ns (records.py)
_WIRE = pa.schema(
    [("type", pa.string())]
    + [(name, pa.string() if dtype == pl.String() else pl.Series([], dtype=dtype).to_arrow().type)
       for name, dtype in {**FIELDS[Kind.QUOTE], **FIELDS[Kind.TRADE]}.items()]
)


def _read_wire(values: list[bytes]) -> pa.Table | None:
    """Fast path: Arrow's C++ JSON reader over the batch, typed by the wire schema.

    Any message it cannot read as one well-typed JSON object per line (invalid JSON, a
    newline inside, a string where a number belongs…) sends the batch to the slower
    per-field path, which isolates the bad messages.
    """
    import pyarrow.json as pajson

    if not values or min(map(len, values)) == 0:
        return None
    joined = b"\n".join(values)
    if joined.count(b"\n") != len(values) - 1:  # a newline inside a message
        return None
    try:
        table = pajson.read_json(
            io.BytesIO(joined),
            read_options=pajson.ReadOptions(use_threads=True, block_size=1 << 20),
            parse_options=pajson.ParseOptions(explicit_schema=_WIRE, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(values) else None


def _utf8_problem(value: bytes) -> str | None:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"message is not valid UTF-8 (byte 0x{value[exc.start]:02x} at position {exc.start}); raw shows it as \\x{value[exc.start]:02x}"
    return None


def decode_messages(
    topic: str,
    values: list[bytes | None],
    partitions: np.ndarray,
    offsets: np.ndarray,
    received: np.ndarray | None = None,
) -> list[SourceBatch]:
    """Kafka message values → a quote batch, a trade batch, and malformed rejects.

    Every per-message problem is a reject of that message (no value, not UTF-8, not JSON,
    a field that does not parse…); the rest of the batch decodes. `received` holds each
    message's Kafka timestamp in ns (-1: none): the receipt time of a tick without one.
    """
    n = len(values)
    recv = received if received is not None else np.full(n, -1, dtype=np.int64)
    joined = b"\n".join(v if v is not None else b"" for v in values)
    try:  # one C-speed check for the batch; per message only when it fails
        joined.decode("utf-8")
        problems: dict[int, str] = {i: "message has no value (a tombstone)" for i, v in enumerate(values) if v is None}
    except UnicodeDecodeError:
        problems = {}
        for i, v in enumerate(values):
            why = "message has no value (a tombstone)" if v is None else _utf8_problem(v)
            if why is not None:
                problems[i] = why
    if problems:
        bad = sorted(problems)
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        rejects = pl.DataFrame(
            {
                "_source": [f"kafka:{topic}/{int(partitions[i])}" for i in bad],
                "_offset": [int(offsets[i]) for i in bad],
                "rule": ["malformed"] * len(bad),
                "reason": [problems[i] for i in bad],
                "_raw": [bounded_raw(values[i] or b"") for i in bad],
                "exchange": pl.Series([None] * len(bad), dtype=pl.String),
                "symbol": pl.Series([None] * len(bad), dtype=pl.String),
                "timestamp": pl.Series([None] * len(bad), dtype=pl.Int64),
            },
            schema_overrides={"_offset": pl.Int64},
        )
        empty = pl.DataFrame(schema={"_offset": pl.Int64, "_raw": pl.String, "_source": pl.String, **FIELDS[Kind.QUOTE]})
        good = [v for v, k in zip(values, keep, strict=True) if k]
        rest = decode_messages(topic, good, partitions[keep], offsets[keep], recv[keep]) if good else []
        return _merge([*rest, SourceBatch(Kind.QUOTE, empty, rejects, 0)])
    return _decode_valid(topic, values, partitions, offsets, recv)  # type: ignore[arg-type]


def _decode_valid(
    topic: str, values: list[bytes], partitions: np.ndarray, offsets: np.ndarray, recv: np.ndarray
) -> list[SourceBatch]:
    """Messages that are all UTF-8 with a value."""
    raw = pl.Series("_raw", values, dtype=pl.Binary).cast(pl.String)
    frame = pl.DataFrame({"_raw": raw, "_offset": offsets, "_p": partitions, "_recv_fallback": recv}).with_columns(
        (pl.lit(f"kafka:{topic}/") + pl.col("_p").cast(pl.String)).alias("_source"),
        pl.when(pl.col("_recv_fallback") >= 0).then(pl.col("_recv_fallback")).alias("_recv_fallback"),
    ).drop("_p")
    fast = _read_wire(values)
    if fast is not None:
        typed = pl.from_arrow(fast)
        assert isinstance(typed, pl.DataFrame)
        return _typed_batches(pl.concat([frame, typed.rename({"type": "_type"})], how="horizontal"))
    if len(values) > 512:  # a few bad messages: keep the fast path for the rest (bisection)
        mid = len(values) // 2
        return _merge(_decode_valid(topic, values[:mid], partitions[:mid], offsets[:mid], recv[:mid])
                      + _decode_valid(topic, values[mid:], partitions[mid:], offsets[mid:], recv[mid:]))  # fmt: skip
    frame = frame.with_columns(raw.str.json_path_match("$.type").alias("_type"))
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        part = frame.filter(pl.col("_type") == str(kind))
        if part.height == 0:
            continue
        dtype = pl.Struct({f: pl.String for f in FIELDS[kind]})
        decoded, bad = _decode_json(part.get_column("_raw"), dtype)
        cols = decoded.struct.unnest() if decoded.len() else pl.DataFrame(schema=dict(dtype.to_schema()))
        part = pl.concat([part.drop("_type"), cols], how="horizontal").with_columns(
            pl.Series("_unreadable", bad)
        )
        unreadable = part.filter(pl.col("_unreadable"))
        mapping = Mapping(kind, {f: f for f in FIELDS[kind]}, ts_unit="ns")
        rows, rejects = decode(part.filter(~pl.col("_unreadable")).drop("_unreadable"), mapping)
        if unreadable.height:
            rejects = pl.concat([rejects, _malformed(unreadable, "JSON this decoder cannot read (nested value?)")],
                                how="diagonal_relaxed")  # fmt: skip
        out.append(SourceBatch(kind, rows, rejects, 0))
    return out + _untyped(frame)


def _merge(batches: list[SourceBatch]) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        same = [b for b in batches if b.kind == kind]
        if same:
            out.append(SourceBatch(kind, pl.concat([b.rows for b in same], how="diagonal_relaxed"),
                                   pl.concat([b.rejects for b in same], how="diagonal_relaxed"), 0))  # fmt: skip
    return out


def _typed_batches(frame: pl.DataFrame) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        part = frame.filter(pl.col("_type") == str(kind))
        if part.height == 0:
            continue
        mapping = Mapping(kind, {f: f for f in FIELDS[kind]}, ts_unit="ns")
        rows, rejects = decode(part.select("_raw", "_offset", "_source", "_recv_fallback", *FIELDS[kind]), mapping)
        out.append(SourceBatch(kind, rows, rejects, 0))
    return out + _untyped(frame)


def _untyped(frame: pl.DataFrame) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    other = frame.filter(pl.col("_type").is_null() | ~pl.col("_type").is_in(["quote", "trade"]))
    if other.height:
        reason = "not a JSON object with \"type\": \"quote\" | \"trade\" (invalid JSON, NaN/Infinity, or no type)"
        empty = pl.DataFrame(schema={"_offset": pl.Int64, "_raw": pl.String, "_source": pl.String, **FIELDS[Kind.QUOTE]})
        out.append(SourceBatch(Kind.QUOTE, empty, _malformed(other, reason), 0))
    return out


def _malformed(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    return frame.select(
        "_source",
        "_offset",
        pl.lit("malformed").alias("rule"),
        pl.lit(reason).alias("reason"),
        pl.col("_raw").fill_null(""),
        pl.lit(None, pl.String).alias("exchange"),
        pl.lit(None, pl.String).alias("symbol"),
        pl.lit(None, pl.Int64).alias("timestamp"),
    )


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set an event instead of killing the process (flush, commit, exit 0)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def committed_offsets(bootstrap: str, topic: str, group: str, extra: dict[str, str] | None = None) -> dict[int, int]:
    """Offsets the group has committed to Kafka, per partition (for `wh status`)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **(extra or {})})
    try:
        md = c.list_topics(topic, timeout=5)
        parts = md.topics.get(topic)
        if parts is None or parts.error is not None:
            return {}
        tps = [TopicPartition(topic, p) for p in parts.partitions]
        return {tp.partition: tp.offset for tp in c.committed(tps, timeout=5) if tp.offset >= 0}
    except KafkaException as exc:
        raise KafkaError(f"cannot read committed offsets from {bootstrap}: {exc}") from exc
    finally:
        c.close()
