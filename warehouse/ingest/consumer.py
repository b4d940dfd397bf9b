"""The Kafka consumer: batches → decode → sanitize → every sink → commit. Exactly once.

Order of a flush, and why nothing is lost or doubled by a crash at any point:

1. the batch is cut from the buffer: per partition, offsets [first, last]; the edges are
   recorded (fsync'd plan file) before any sink sees the batch, and after a crash the
   first batch is cut at exactly those edges again (same ClickHouse token);
2. ClickHouse gets it first. Each insert is anti-joined against the dedup keys already
   stored and carries `insert_deduplication_token` derived from (group, topic, table,
   partition ranges), so replaying the batch after a crash adds nothing;
3. DuckDB gets it last, rows *and* the next offsets *and* the sanitizer's state after the
   batch in one transaction (after a restart the stateful rules resume from that state, so
   a crash changes no verdict; a batch that fails to store rolls the rules back to it);
4. only then are the offsets committed to Kafka.

On (re)assignment the consumer resumes from the offsets DuckDB stored with its rows when
DuckDB is a sink (it is written last, so every sink holds everything before them), else
from Kafka's committed offsets. A crash before 3 replays the batch into ClickHouse
(deduplicated) and DuckDB; a crash between 3 and 4 resumes from DuckDB's offsets.

A sink that fails pauses consumption; the batch is retried with exponential backoff and
jitter, `min(Tmax, Tbase·2^attempt) + U(0, Tbase)`; nothing new is read meanwhile
(memory stays bounded), offsets do not move. Revocation flushes and commits; a lost
assignment drops the buffer without committing. SIGINT/SIGTERM flush, commit, exit 0.

Retention loss is never silent: when a partition's low watermark is above the position the
group resumes from (its stored or committed offset, or 0 for a new group), or the stream
jumps past offsets the broker has since expired, the range becomes a row of
`wh.stream_losses` (written with the next batch, idempotently) and `on_loss` is told.

`unsafe_commit_first` is the negative control for the tests: it commits before writing
and resumes from Kafka's offsets — the classic at-most-once bug — so a crash loses data.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from warehouse.backoff import backoff
from warehouse.errors import ConfigError, KafkaError, WarehouseError
from warehouse.ingest.kafka import decode_messages
from warehouse.ingest.kafka.wire import arrow_kind
from warehouse.pipeline.step import BatchStep
from warehouse.records import STREAM_LOSS_SCHEMA
from warehouse.sanitize import SanitizeConfig
from warehouse.sinks.base import Sink, StreamPosition, WriteBatch


@dataclass
class IngestStats:
    messages: int = 0
    batches: int = 0
    last_batch: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    retries: int = 0
    lost: int = 0  # messages the broker expired before this group read them
    lag: int | None = None
    started: float = field(default_factory=time.perf_counter)
    first_message_at: float | None = None  # perf_counter of the first message (after the group join)
    last_message_at: float | None = None  # perf_counter of the newest message taken
    last_flush_at: float | None = None
    last_wait: float = 0.0  # the last batch: from its newest message to its flush (a batch not full waits)

    def busy_seconds(self) -> float:
        """First message → last batch stored, less the last batch's wait for batch_seconds: the
        time a throughput figure divides by."""
        if self.first_message_at is None or self.last_flush_at is None:
            return 0.0
        return self.last_flush_at - self.first_message_at - self.last_wait

    @property
    def rate(self) -> float:
        return self.messages / max(time.perf_counter() - self.started, 1e-9)


# A batch also closes at this many bytes of message values: an Arrow message holds ~1,000
# ticks, so --batch-rows (a message count) alone would let one batch hold 50 M ticks.
BATCH_BYTES = 64 * 2**20


class Ingestor:
    def __init__(
        self,
        sinks: list[Sink],
        *,
        bootstrap: str,
        topic: str,
        group: str,
        batch_rows: int = 50_000,
        batch_seconds: float = 2.0,
        stop_when_idle: float | None = None,
        kafka_config: dict[str, str] | None = None,
        sanitize: SanitizeConfig | None = None,
        unsafe_commit_first: bool = False,
        unsafe_delay: float = 0.0,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        on_batch: Callable[[IngestStats], None] | None = None,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        on_loss: Callable[[int, int, int], None] | None = None,
        on_assign: Callable[[dict[int, int]], None] | None = None,
        plan_dir: Path | None = None,
    ) -> None:
        if not sinks:
            raise ConfigError(
                "no sinks: give at least one of duckdb, clickhouse (consuming into nothing would "
                "commit offsets for data that is stored nowhere)"
            )
        # sinks that keep offsets with their rows are written last (see module docstring)
        self.sinks = sorted(sinks, key=lambda s: s.keeps_offsets)
        self.offset_sink = next((s for s in reversed(self.sinks) if s.keeps_offsets), None)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.batch_rows, self.batch_seconds, self.stop_when_idle = batch_rows, batch_seconds, stop_when_idle
        self.kafka_config = kafka_config or {}
        self.step = BatchStep(f"kafka:{topic}", sanitize)  # the one batch step every driver runs
        self.unsafe = unsafe_commit_first
        self.unsafe_delay = unsafe_delay
        self.retry_base, self.retry_max = retry_base, retry_max
        self.on_batch, self.on_retry, self.on_loss, self.on_assign = on_batch, on_retry, on_loss, on_assign
        self.stats = IngestStats()
        self.buffer: list[Any] = []
        self._buffer_bytes = 0  # of the values in the buffer (approximate after a rebalance: a trigger only)
        self.rng = random.Random()
        self.consumer: Any = None
        self._stop = threading.Event()
        self._assigned_at: float | None = None  # idle time counts from the first assignment
        self._resume: dict[int, int] = {}  # partition → offset consumption resumed from
        self._cooperative = True  # incremental (cooperative-sticky) rebalances, as run() configures
        self._align: dict[int, int] = {}  # partition → stored next offset to commit to Kafka
        self._align_at = 0.0  # a failed commit is tried again from then on (not at every poll)
        self._lag_at = -1e9  # when the lag was last computed (at most once a second)
        self._held: set[int] = set()  # partitions paused while the interrupted batch is re-cut
        self._expect: dict[int, int] = {}  # partition → next offset the stream should deliver
        self._losses: list[dict[str, Any]] = []  # loss events not yet written
        self._committed_state: dict[str, bytes] = {}  # sanitizer state as of the last stored batch
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{group}__{topic}")
        self.plan_file = plan_dir / f"{safe}.plan.json" if plan_dir is not None else None
        self._replay = self._load_plan()  # edges of the batch in flight when the last run died

    # -- consumer group callbacks -------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        if self.offset_sink is not None and not self.unsafe:
            stored = self.offset_sink.stored_offsets(self.group, self.topic) or {}
            for tp in partitions:
                if tp.partition in stored:
                    tp.offset = stored[tp.partition]
                    # Kafka's committed offset may be behind (a commit that failed in a rebalance,
                    # a crash between DuckDB and the commit): align it, so lag and other readers
                    # of the group see what is stored (committed from the loop, not from here)
                    self._align[tp.partition] = stored[tp.partition]
        # cooperative-sticky: `partitions` are the ones added now; the others stay where they are
        for tp in partitions:
            self._resume.pop(tp.partition, None)
        self._resume |= {tp.partition: tp.offset for tp in partitions if tp.offset >= 0}
        unknown = [tp for tp in partitions if tp.offset < 0]
        known = True
        if unknown:
            try:  # resuming from Kafka's committed offsets: learn them (replay edges, loss check)
                for tp in consumer.committed(unknown, timeout=5):
                    if tp.offset >= 0:
                        self._resume[tp.partition] = tp.offset
            except Exception:
                known = False  # cannot tell where the group stood: no loss verdict
        if known:
            self._check_retention(consumer, [tp.partition for tp in partitions])
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        if partitions:
            # a pause outlives an unassign in librdkafka (measured): a partition this consumer
            # held during a re-cut and gets back later must not stay paused
            consumer.resume(partitions)
            self._assigned_at = time.monotonic()
        if self.on_assign is not None:  # partition → where it resumes (-1: from the reset policy)
            self.on_assign({tp.partition: self._resume.get(tp.partition, -1) for tp in partitions})

    def _check_retention(self, consumer: Any, partitions: list[int]) -> None:
        """A low watermark above where the group resumes (0 for a new group) = expired messages."""
        from confluent_kafka import KafkaException, TopicPartition

        for p in partitions:
            start = self._resume.get(p, 0)
            try:
                low, _ = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5, cached=False)
            except KafkaException:
                continue
            if low > start:
                self._lose(p, start, low - 1, "expired by the broker before this group read them")
            self._expect[p] = max(start, low)

    def _lose(self, partition: int, first: int, last: int, reason: str) -> None:
        from datetime import UTC, datetime

        self._losses.append({"detected_at": datetime.now(UTC), "group_id": self.group, "topic": self.topic,
                             "partition": partition, "from_offset": first, "to_offset": last,
                             "missing": last - first + 1, "reason": reason})  # fmt: skip
        self.stats.lost += last - first + 1
        if self.on_loss is not None:
            self.on_loss(partition, first, last)

    def _jumped(self, partition: int, expected: int, offset: int) -> None:
        """The stream skipped offsets: a loss when the broker no longer has them (retention
        passed our position); compaction and transaction markers also leave holes — not losses."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            low, _ = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=5, cached=False)
        except KafkaException:
            return
        if low > expected:
            self._lose(partition, expected, min(low, offset) - 1, "expired by the broker while the group was behind")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {tp.partition for tp in partitions}
        for p in revoked:
            self._expect.pop(p, None)
        self._held -= revoked
        if self.buffer:
            pending = list(self.buffer)
            try:
                self._flush(retry=False)
            except WarehouseError:
                # not committed: the revoked partitions' messages are re-read by their next owner;
                # those of the partitions this consumer keeps (cooperative rebalancing) stay here
                self.buffer = [m for m in pending if m.partition() not in revoked] + self.buffer
        for p in revoked:  # no longer ours to commit: the next owner aligns from what is stored
            self._align.pop(p, None)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {tp.partition for tp in partitions}
        self._held -= lost
        self.buffer = [m for m in self.buffer if m.partition() not in lost]
        for p in lost:
            self._expect.pop(p, None)
            self._align.pop(p, None)

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> IngestStats:
        from confluent_kafka import Consumer
        from confluent_kafka import KafkaError as CKError

        stop = stop or self._stop
        conf = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            # a rebalance moves only the partitions that change owner; the others keep consuming
            "partition.assignment.strategy": "cooperative-sticky",
            "fetch.max.bytes": 52_428_800,
            # Arrow messages hold ~1,000 ticks (~80 KB): 1 MB per partition per fetch (the
            # default) kept the consumer waiting on fetches at ~130 k ticks/s
            "max.partition.fetch.bytes": 16_777_216,
            **self.kafka_config,
        }
        self._cooperative = conf["partition.assignment.strategy"] == "cooperative-sticky"
        self._warm_start()
        self.consumer = Consumer(conf)
        self.consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        started_batch = time.monotonic()
        last_message = time.monotonic()
        try:
            while not stop.is_set():
                # re-cutting the interrupted batch takes as many messages as its edges need
                want = 10_000 if self._replay is not None else max(1, min(10_000, self.batch_rows - len(self.buffer)))
                # wait no longer than the open batch may stay open: a batch is due batch_seconds
                # after its first message, not at the next 0.2 s poll after that
                wait = (
                    0.2
                    if not self.buffer
                    else min(0.2, max(0.005, self.batch_seconds - (time.monotonic() - started_batch)))
                )
                msgs = self.consumer.consume(num_messages=want, timeout=wait)
                if self._align and time.monotonic() >= self._align_at:
                    self._commit_aligned()
                now = time.monotonic()
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == CKError._PARTITION_EOF:
                            continue
                        if err.fatal():
                            raise KafkaError(f"fatal consumer error: {err}")
                        continue  # transient: librdkafka retries by itself
                    if not self.buffer:
                        started_batch = now
                    if self.stats.first_message_at is None:
                        self.stats.first_message_at = time.perf_counter()
                    p, o = m.partition(), m.offset()
                    expected = self._expect.get(p)
                    if expected is not None and o > expected:
                        self._jumped(p, expected, o)
                    self._expect[p] = o + 1
                    self.buffer.append(m)
                    self._buffer_bytes += len(m)
                if msgs:
                    last_message = now
                    self.stats.last_message_at = time.perf_counter()
                elif self._assigned_at is not None and last_message < self._assigned_at:
                    last_message = self._assigned_at
                batches = self.stats.batches
                if self._replay is not None:
                    self._replay_step(now)
                elif self.buffer and (len(self.buffer) >= self.batch_rows or now - started_batch >= self.batch_seconds
                                      or self._buffer_bytes >= BATCH_BYTES):  # fmt: skip
                    self._flush()
                elif self._losses and not self.buffer:
                    self._write_losses()
                if self.stats.batches != batches:
                    # idle means no message while waiting for one: time spent writing (retries
                    # through a sink outage, consumption paused) is not idle time
                    last_message = max(last_message, time.monotonic())
                if (
                    self.stop_when_idle is not None
                    and not self.buffer
                    and now - last_message >= self.stop_when_idle
                    and (self._assigned_at is not None or now - last_message >= max(60.0, self.stop_when_idle))
                ):
                    break
            if self.buffer:
                self._flush()
            if self._losses:
                self._write_losses()
            if self._align:  # a commit that failed last, or an assignment not yet aligned
                self._commit_aligned()
            self.stats.lag = self._lag(force=True)
        finally:
            self.consumer.close()
        return self.stats

    # -- the sanitizer's state across restarts -------------------------------------------
    def _warm_start(self) -> None:
        """Resume the stateful rules (duplicate, out_of_order, spike, gaps) exactly where the
        stored offsets are: the state was written with them, in one transaction."""
        if self.offset_sink is None or self.unsafe:
            return
        state = self.offset_sink.stored_state(self.group, self.topic)
        if state:
            self.step.restore(state)
            self._committed_state = state

    # -- reproducible batch edges --------------------------------------------------------
    def _load_plan(self) -> dict[int, tuple[int, int]] | None:
        if self.plan_file is None or not self.plan_file.is_file():
            return None
        try:
            data = json.loads(self.plan_file.read_text())
            return {int(p): (int(a), int(b)) for p, (a, b) in data["ranges"].items()}
        except (ValueError, KeyError, TypeError):
            return None

    def _save_plan(self, ranges: dict[int, tuple[int, int]]) -> None:
        """Record the batch's edges before any sink sees it (fsync'd, atomic rename)."""
        if self.plan_file is None:
            return
        self.plan_file.parent.mkdir(parents=True, exist_ok=True)
        # one temporary file per process: consumers of one group sharing WH_HOME write the same
        # plan file, and a shared temporary name let one rename another's file away (seen in the
        # scale-out test: FileNotFoundError). The plan itself is last-writer-wins between them:
        # a re-cut only uses partitions the consumer owns, and dedup holds where edges differ.
        tmp = self.plan_file.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("w") as f:
            json.dump({"ranges": {str(p): list(r) for p, r in ranges.items()}}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.plan_file)

    def _replay_step(self, now: float) -> None:
        """After a crash, cut the first batch exactly where the interrupted one was cut, so
        ClickHouse sees the same insert_deduplication_token for the same offsets."""
        assert self._replay is not None
        if self._assigned_at is None:
            return
        assigned = {tp.partition for tp in self.consumer.assignment()}
        need = {p: last for p, (_, last) in self._replay.items()
                if p in assigned and self._resume.get(p, -1) <= last}  # fmt: skip
        done = {p for p, last in need.items() if any(m.partition() == p and m.offset() >= last for m in self.buffer)}
        if len(done) < len(need):
            if now - self._assigned_at > 30:  # the messages are gone (retention?): give up, dedup still holds
                self._end_replay()
                return
            # a real broker hands one partition's backlog over in bulk: hold the partitions that
            # are complete (or not part of the cut) so the fetcher brings the missing ones
            hold = [tp for tp in self.consumer.assignment()
                    if (tp.partition not in need or tp.partition in done) and tp.partition not in self._held]  # fmt: skip
            if hold:
                self.consumer.pause(hold)
                self._held |= {tp.partition for tp in hold}
            return
        self._end_replay()
        inside = [m for m in self.buffer if m.partition() in need and m.offset() <= need[m.partition()]]
        rest = [m for m in self.buffer if not (m.partition() in need and m.offset() <= need[m.partition()])]
        self.buffer = inside
        if inside:
            self._flush()
        self.buffer = rest + self.buffer

    def _end_replay(self) -> None:
        from confluent_kafka import TopicPartition

        self._replay = None
        held, self._held = self._held, set()
        owned = {tp.partition for tp in self.consumer.assignment()}
        if held & owned:
            self.consumer.resume([TopicPartition(self.topic, p) for p in sorted(held & owned)])

    def _flush(self, retry: bool = True) -> None:
        if self.stats.last_message_at is not None:
            self.stats.last_wait = max(0.0, time.perf_counter() - self.stats.last_message_at)
        msgs, self.buffer, self._buffer_bytes = self.buffer, [], 0
        values = [m.value() for m in msgs]
        partitions = np.fromiter((m.partition() for m in msgs), dtype=np.int32, count=len(msgs))
        offsets = np.fromiter((m.offset() for m in msgs), dtype=np.int64, count=len(msgs))
        # the Kafka timestamp (producer create time or broker append time, ms) is the receipt
        # time of a tick that carries none: stored with the message, the same on every re-read
        received = np.fromiter(
            (ms * 1_000_000 if kind and ms >= 0 else -1 for kind, ms in (m.timestamp() for m in msgs)),
            dtype=np.int64,
            count=len(msgs),
        )
        ranges: dict[int, tuple[int, int]] = {}
        for p in np.unique(partitions):
            sel = offsets[partitions == p]
            ranges[int(p)] = (int(sel.min()), int(sel.max()))
        self._save_plan(ranges)
        if self.unsafe:
            self._commit(ranges)
            time.sleep(self.unsafe_delay)
        losses, self._losses = self._losses, []
        extra = {"stream_losses": pa.Table.from_pylist(losses, schema=STREAM_LOSS_SCHEMA)} if losses else None
        kinds = [arrow_kind(m.headers()) for m in msgs]  # None for JSON (no Arrow content type)
        result = self.step(decode_messages(self.topic, values, partitions, offsets, received, kinds), extra)
        wb, rejected = result.batch, result.rows_rejected
        state = self.step.snapshot()  # stored by the sink that keeps offsets; kept here to undo a failed batch
        position = StreamPosition(self.group, self.topic, ranges, state=state)
        try:
            for sink in self.sinks:
                counts = self._write_with_retry(sink, wb, position, retry)
                self.stats.stored[sink.name] = self.stats.stored.get(sink.name, 0) + sum(
                    counts.stored.get(t, 0) for t in ("market_ticks", "trades")
                )
        except BaseException:
            # not stored: these messages will be read again, so the rules must not remember them
            self.step.restore(self._committed_state)  # empty: back to "nothing seen"
            self._losses = losses + self._losses
            raise
        self._committed_state = state
        if not self.unsafe:
            self._commit(ranges)
        self.stats.messages += len(msgs)
        self.stats.batches += 1
        self.stats.last_batch = len(msgs)
        self.stats.rejected += rejected
        self.stats.lag = self._lag()
        self.stats.last_flush_at = time.perf_counter()
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def _write_losses(self) -> None:
        """Loss events with no batch to ride on (nothing left to read after the hole)."""
        losses, self._losses = self._losses, []
        wb = {"stream_losses": pa.Table.from_pylist(losses, schema=STREAM_LOSS_SCHEMA)}
        for sink in self.sinks:
            self._write_with_retry(sink, wb, None, True)

    def _write_with_retry(self, sink: Sink, wb: WriteBatch, position: StreamPosition | None, retry: bool) -> Any:
        attempt = 0
        paused = False
        try:
            while True:
                try:
                    return sink.write(wb, position)
                except WarehouseError as exc:
                    if not retry:
                        raise
                    if not paused:
                        self.consumer.pause(self.consumer.assignment())
                        paused = True
                    delay = backoff(attempt, self.retry_base, self.retry_max, self.rng)
                    self.stats.retries += 1
                    if self.on_retry is not None:
                        self.on_retry(sink.name, attempt, delay, exc)
                    deadline = time.monotonic() + delay
                    while time.monotonic() < deadline:
                        # poll serves the group (heartbeats, rebalances); a message fetched
                        # before the pause is kept for the next batch, never dropped
                        m = self.consumer.poll(min(0.2, max(0.0, deadline - time.monotonic())))
                        if m is not None and m.error() is None:
                            self.buffer.append(m)
                    attempt += 1
        finally:
            if paused:
                self.consumer.resume(self.consumer.assignment())

    def _commit_aligned(self) -> None:
        """Commit what is stored but not yet committed, for partitions still owned: offsets DuckDB
        holds for newly assigned partitions, and commits that failed (in a rebalance)."""
        owned = {tp.partition for tp in self.consumer.assignment()}
        align, self._align = self._align, {}
        ranges = {p: (o - 1, o - 1) for p, o in align.items() if p in owned and o > 0}
        if ranges:
            self._commit(ranges)

    def _commit(self, ranges: dict[int, tuple[int, int]]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(self.topic, p, last + 1) for p, (_, last) in ranges.items()]
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # rows are stored; a failed commit only means they may be read again (deduplicated).
            # Kept to be committed again while the partition is ours: left behind, the group's
            # committed offset (lag, `wh status`, a consumer without DuckDB) trails what is stored
            if not self.unsafe:
                for p, (_, last) in ranges.items():
                    self._align[p] = max(self._align.get(p, -1), last + 1)
                self._align_at = time.monotonic() + 1.0
            if self.on_retry is not None:
                self.on_retry("kafka-commit", 0, 0.0, exc)
        else:
            for p, (_, last) in ranges.items():
                if self._align.get(p, -1) <= last + 1:
                    self._align.pop(p, None)

    def _lag(self, force: bool = False) -> int | None:
        """Messages behind the partitions' high watermarks, from what this client already knows
        (the watermarks every fetch response carries; the position it consumed to): no broker
        round trip. Refreshed at most once a second — asking the broker per partition per batch
        took 56 % of a batch (issue 15)."""
        from confluent_kafka import KafkaException

        now = time.monotonic()
        if now - self._lag_at < 1.0 and not force:
            return self.stats.lag
        self._lag_at = now
        try:
            assignment = self.consumer.assignment()
            total = 0
            for tp in self.consumer.position(assignment) if assignment else []:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # not fetched yet: unknown
                    return None
                total += max(0, high - tp.offset) if tp.offset >= 0 else high
            return total
        except KafkaException:
            return None
