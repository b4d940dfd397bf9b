"""`wh bench freshness`: how long a tick takes from produce() to queryable, per sink.

Everything runs here, isolated in a temporary directory: a real Apache Kafka (or
`--bootstrap`), a real QuestDB and a local ClickHouse server (the chdb wheel's), each
started for the run and stopped after it. A producer publishes synthetic ticks at a steady
rate (default 50,000/s) to a one-partition topic; two `wh ingest` processes consume it the
way the design card deploys them — the hot group into QuestDB (flush every 0.25 s), the
cold group into ClickHouse (50,000 rows or 2 s) — and this process polls `count()` of each
sink every 50 ms.

Freshness of tick n = (end of the first poll that counts ≥ n rows) − (when the producer
began the chunk of 1/100 s holding tick n). One partition keeps the order: the consumer
stores ticks in produce order, so a count ≥ n means tick n is queryable. Both ends are
taken on the conservative side (at most one chunk, 10 ms, plus one poll, ~50 ms, late).
Beside it: the produce rate achieved and each sink's rows/s while the ticks flowed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warehouse.bench.common import Log, machine, quiet
from warehouse.errors import WarehouseError

TARGET_P99 = {"questdb": 1.0, "clickhouse": 3.0}  # seconds
POLL_S = 0.05
CHUNKS_PER_S = 100
HOT = ("questdb", "50000", "0.25")  # sinks, batch rows, batch seconds
COLD = ("clickhouse", "50000", "2")
QUIET = {"log_level": "3"}  # librdkafka: errors only on stderr
COUNTS = ("SELECT count() FROM wh.market_ticks", "SELECT count() FROM wh.trades")


@dataclass
class SinkFreshness:
    sink: str
    batch: str
    rows: int
    p50: float
    p99: float
    max: float
    rows_per_s: float  # while the ticks flowed: first produce → last row queryable

    @property
    def target(self) -> float:
        return TARGET_P99[self.sink]


@dataclass
class FreshnessBench:
    machine: str
    rate: float  # asked
    produced: int
    produce_seconds: float
    delivery_failures: int
    broker: str
    sinks: list[SinkFreshness] = field(default_factory=list)

    @property
    def produce_rate(self) -> float:
        return self.produced / self.produce_seconds


class _Poller(threading.Thread):
    """(time at the end of the poll, count) every POLL_S, until stopped."""

    def __init__(self, name: str, count: Callable[[], int]) -> None:
        super().__init__(name=f"wh-fresh-{name}", daemon=True)
        self.count = count
        self.samples: list[tuple[float, int]] = []
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t = time.perf_counter()
            try:
                n = self.count()
            except WarehouseError as exc:  # a sink between two states: retry, keep the last error
                self.error = exc
                n = self.samples[-1][1] if self.samples else 0
            self.samples.append((time.perf_counter(), n))
            self.halt.wait(max(0.0, POLL_S - (time.perf_counter() - t)))

    @property
    def last(self) -> int:
        return self.samples[-1][1] if self.samples else 0


def latencies(marks: list[tuple[int, float]], samples: list[tuple[float, int]], total: int) -> np.ndarray:
    """Seconds from produce to queryable for ticks 1…total. `marks`: (ticks produced before the
    chunk, time the chunk began), ascending; `samples`: (poll end time, count), in poll order."""
    starts = np.array([m[0] for m in marks], dtype=np.int64)
    began = np.array([m[1] for m in marks])
    ticks = np.arange(1, total + 1)
    produced_at = began[np.searchsorted(starts, ticks, side="left") - 1]  # the chunk holding tick n
    seen_t = np.array([s[0] for s in samples])
    seen_n = np.maximum.accumulate(np.array([s[1] for s in samples], dtype=np.int64))
    first = np.searchsorted(seen_n, ticks, side="left")
    if first.max(initial=0) >= len(samples):
        raise WarehouseError(f"only {int(seen_n[-1]) if len(seen_n) else 0:,} of {total:,} ticks became queryable")
    return seen_t[first] - produced_at


def run(rate: float = 50_000, seconds: float = 30.0, *, bootstrap: str | None = None, log: Log = quiet,
        keep: Path | None = None) -> FreshnessBench:  # fmt: skip
    from warehouse.ingest.kafka import produce
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.servers.kafka import LocalKafkaServer
    from warehouse.servers.questdb import LocalQuestDBServer
    from warehouse.sql.chserver import LocalClickHouseServer

    total = int(rate * seconds)
    work = Path(tempfile.mkdtemp(prefix="wh-bench-freshness-", dir=keep))
    stack = contextlib.ExitStack()
    procs: list[subprocess.Popen[str]] = []
    try:
        log("starting QuestDB" + ("" if bootstrap else ", Apache Kafka") + " and a local ClickHouse server")
        qdb = LocalQuestDBServer(work / "questdb")
        qdb.fetch()
        qdb.launch()
        stack.callback(qdb.stop)
        if bootstrap is None:
            kafka = LocalKafkaServer(work / "kafka")
            kafka.fetch()
            kafka.launch()
            stack.callback(kafka.stop)
        ch = LocalClickHouseServer(work / "clickhouse")
        ch.start(timeout=60)
        stack.callback(ch.stop)
        qdb.wait_ready(120)
        broker = bootstrap or "Apache Kafka 4.4 started for the run (one node, KRaft)"
        if bootstrap is None:
            kafka.wait_ready(120)
            bootstrap = kafka.bootstrap
        env = {**os.environ, "WH_HOME": str(work / "home"), "QDB_CLIENT_CONF": qdb.client_conf,
               "WH_CLICKHOUSE_URL": ch.dsn().get_secret_value(), "WH_KAFKA_BOOTSTRAP": bootstrap}  # fmt: skip
        for var in ("WH_CLICKHOUSE_HOST", "WH_CLICKHOUSE_USER", "WH_CLICKHOUSE_PASSWORD"):
            env.pop(var, None)
        wh = [sys.executable, "-m", "warehouse.cli.main"]
        for engine in ("questdb", "clickhouse"):
            subprocess.run([*wh, "migrate", "--engine", engine], env=env, check=True, capture_output=True, text=True)
        topic = f"freshness-{uuid.uuid4().hex[:8]}"
        _create_topic(bootstrap, topic)
        log(f"topic {topic} (1 partition) on {bootstrap}; starting the hot and cold consumer groups")
        for sinks, rows, secs in (HOT, COLD):
            proc = subprocess.Popen([*wh, "ingest", "--topic", topic, "--group", f"{topic}-{sinks}", "--sinks", sinks,
                                  "--batch-rows", rows, "--batch-seconds", secs],
                                 env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"ingest-{sinks}.log", "w"),  # noqa: SIM115
                                 text=True, start_new_session=True)  # fmt: skip
            procs.append(proc)
        counts = _counters(qdb.client_conf, ch.dsn(read_only=True).get_secret_value())
        pollers = {name: _Poller(name, fn) for name, fn in counts.items()}
        _wait_joined(work, procs)
        for poller in pollers.values():
            poller.start()
        marks: list[tuple[int, float]] = []
        chunk = max(1, int(rate / CHUNKS_PER_S))
        # generated before the clock starts: the producer's loop only encodes and sends
        batches = list(SyntheticFeed(instruments=24, ticks=total, seed=7, chunk=chunk).batches())

        def mark(report: object) -> None:
            marks.append((int(getattr(report, "produced", 0)), time.perf_counter()))

        # a fresh cluster answers the first idempotent producer "coordinator load in progress"
        # for a few seconds: take that wait before the clock starts
        produce(bootstrap, f"{topic}-warmup", SyntheticFeed(instruments=1, ticks=10, seed=1).batches(),
                extra_config=QUIET)  # fmt: skip
        log(f"producing {total:,} ticks at {rate:,.0f}/s for {seconds:g} s")
        marks.append((0, time.perf_counter()))
        report = produce(bootstrap, topic, batches, rate=rate, on_progress=mark, extra_config=QUIET)
        log(f"produced {report.produced:,} in {report.seconds:.1f} s; waiting for both sinks")
        deadline = time.monotonic() + max(120.0, seconds * 4)
        while time.monotonic() < deadline and any(q.last < report.produced for q in pollers.values()):
            for proc in procs:
                if proc.poll() is not None:
                    raise WarehouseError(f"a wh ingest process exited ({proc.returncode}); see {work}")
            time.sleep(0.2)
        for poller in pollers.values():
            poller.halt.set()
            poller.join()
        result = FreshnessBench(machine=machine(), rate=rate, produced=report.produced,
                                produce_seconds=report.seconds, delivery_failures=report.failed,
                                broker=broker)  # fmt: skip
        for (name, poller), (_, rows, secs) in zip(pollers.items(), (HOT, COLD), strict=True):
            lat = latencies(marks, poller.samples, report.produced)
            done = next(t for t, n in poller.samples if n >= report.produced)
            result.sinks.append(SinkFreshness(
                sink=name, batch=f"{int(rows):,} rows or {secs} s", rows=report.produced,
                p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)), max=float(lat.max()),
                rows_per_s=report.produced / (done - marks[0][1])))  # fmt: skip
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stack.close()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        fut.result(30)


def _wait_joined(work: Path, procs: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    """Both consumers have their partition (their log says so) before the first tick goes out."""
    deadline = time.monotonic() + timeout
    logs = [work / "ingest-questdb.log", work / "ingest-clickhouse.log"]
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise WarehouseError(f"wh ingest exited with {proc.returncode}: "
                                     + " | ".join(p.read_text()[-500:] for p in logs if p.exists()))  # fmt: skip
        if all(p.exists() and "assigned " in p.read_text() for p in logs):
            return
        time.sleep(0.1)
    raise WarehouseError("the consumers did not get their partition within 60 s: "
                         + " | ".join(p.read_text()[-500:] for p in logs if p.exists()))  # fmt: skip


def _counters(client_conf: str, ch_dsn: str) -> dict[str, Callable[[], int]]:
    """count() of quotes + trades in each sink, on connections of this process."""
    from pydantic import SecretStr

    from warehouse.config import ClickHouseSettings, QuestDBSettings, Settings
    from warehouse.sql.engines import ClickHouseEngine, QuestDBEngine

    qdb = QuestDBEngine(QuestDBSettings(client_conf=SecretStr(client_conf)), read_only=True)
    ch = ClickHouseEngine(Settings(clickhouse=ClickHouseSettings(url=SecretStr(ch_dsn))), read_only=True)

    def count(engine: QuestDBEngine | ClickHouseEngine) -> int:
        return sum(int(engine.query(sql).column(0)[0].as_py()) for sql in COUNTS)

    return {"questdb": lambda: count(qdb), "clickhouse": lambda: count(ch)}
