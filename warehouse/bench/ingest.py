"""`wh bench ingest`: JSON ticks through Kafka into each engine beside a consume-only ceiling.

N synthetic ticks are produced as JSON to a fresh topic (the embedded broker by default,
which keeps only ~5 MB per partition: keep N small there, or give a real cluster); then
(a) the ceiling — a consumer that only reads the values — (b) wh's consumer group into
DuckDB, then into ClickHouse, end to end (decode, sanitize, write, commit), and (c)
ClickHouse's own `INSERT … SELECT FROM file(parquet)` beside wh's insert path (dedup
lookup + insert_arrow) for the same rows.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.bench.common import Log, machine, peak_rss_mb, quiet, synthetic_parquet
from warehouse.records import Kind

TARGET_RATE = 1_000_000  # msg/s end to end
TARGET_RATIO = 0.7  # end to end / consume-only (issue 15)
TARGET_INSERT_RATIO = 0.7  # wh insert path / INSERT … SELECT FROM file()
TARGET_ARROW = 1_000_000  # ticks/s end to end, Arrow wire format → DuckDB
ARROW_PER_MESSAGE = 1_000


@dataclass(frozen=True)
class EndToEnd:
    engine: str
    messages: int
    seconds: float  # busy: the last batch's wait for batch_seconds left out
    last_wait: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class IngestBench:
    machine: str
    produced: int
    produce_seconds: float
    delivery_failures: int
    consumed: int  # by the ceiling consumer
    consume_seconds: float
    rows: int  # of the ClickHouse insert comparison
    clickhouse_file_seconds: float = 0.0
    clickhouse_wh_seconds: float = 0.0  # the sink's write: the quotes and their stored z-scores
    clickhouse_ticks_seconds: float = 0.0  # the same write with the stored z-scores left out
    end_to_end: list[EndToEnd] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    arrow_ticks: int = 0  # the Arrow wire format run: ticks produced
    arrow_messages: int = 0
    arrow_produce_seconds: float = 0.0
    arrow_consume_seconds: float = 0.0  # consume-only, the same messages
    arrow_end_to_end: EndToEnd | None = None  # messages = ticks here

    @property
    def arrow_ceiling_rate(self) -> float:
        """Ticks/s a consumer reads when it does nothing else with the Arrow messages."""
        return self.arrow_ticks / self.arrow_consume_seconds if self.arrow_consume_seconds else 0.0

    @property
    def produce_rate(self) -> float:
        return self.produced / self.produce_seconds

    @property
    def ceiling_rate(self) -> float:
        return self.consumed / self.consume_seconds

    @property
    def clickhouse_file_rate(self) -> float:
        return self.rows / self.clickhouse_file_seconds

    @property
    def clickhouse_wh_rate(self) -> float:
        return self.rows / self.clickhouse_wh_seconds

    @property
    def clickhouse_ratio(self) -> float:
        return self.clickhouse_file_seconds / self.clickhouse_wh_seconds

    @property
    def clickhouse_ticks_ratio(self) -> float:
        return self.clickhouse_file_seconds / self.clickhouse_ticks_seconds


def _consume_only(bootstrap: str, topic: str, expected: int, read_arrow: bool = False) -> tuple[int, float]:
    """Read `expected` messages' values, nothing else (`read_arrow`: and open each as an Arrow
    table, zero-copy): (messages, seconds from the first)."""
    import pyarrow as pa
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ceiling-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 16_777_216})  # as the consumer: Arrow messages are big  # fmt: skip
    try:
        c.subscribe([topic])
        got, first = 0, None
        while got < expected:
            msgs = c.consume(num_messages=10_000, timeout=1.0)
            if msgs and first is None:
                first = time.perf_counter()
            values = [m.value() for m in msgs if m.error() is None]
            if read_arrow:
                for v in values:
                    pa.ipc.open_stream(v).read_all()
            got += len(values)
        return got, time.perf_counter() - (first or time.perf_counter())
    finally:
        c.close()


def run(ticks: int = 200_000, *, bootstrap: str | None = None, log: Log = quiet,
        arrow_ticks: int = 500_000) -> IngestBench:  # fmt: skip
    """`bootstrap`: a real cluster (default: an embedded broker started for the run)."""
    import pyarrow.parquet as pq

    from warehouse.config import Settings
    from warehouse.ingest.consumer import Ingestor
    from warehouse.ingest.kafka import MockBroker, produce
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.sinks.base import prepare
    from warehouse.sinks.clickhouse import ClickHouseSink
    from warehouse.sinks.duckdb import DuckDBSink
    from warehouse.sql.engines import close_embedded

    broker = None
    if bootstrap is None:
        broker = MockBroker()
        bootstrap = broker.bootstrap
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    try:
        log(f"producing {ticks:,} JSON ticks to {topic}")
        feed = SyntheticFeed(ticks=ticks, seed=42, chunk=min(ticks, 200_000))
        rep = produce(bootstrap, topic, feed.batches())
        log("ceiling: consume only")
        got, seconds = _consume_only(bootstrap, topic, rep.produced)
        result = IngestBench(machine=machine(), produced=rep.produced, produce_seconds=rep.seconds,
                             delivery_failures=rep.failed, consumed=got, consume_seconds=seconds, rows=ticks)  # fmt: skip
        for name in ("duckdb", "clickhouse"):
            log(f"end to end into {name}")
            settings = Settings(home=work / name)
            sink = DuckDBSink(settings) if name == "duckdb" else ClickHouseSink(settings)
            try:
                ing = Ingestor([sink], bootstrap=bootstrap, topic=topic, group=f"{name}-{topic}", stop_when_idle=2.0)
                st = ing.run()
            finally:
                sink.close()
                close_embedded()
            # the last batch is rarely full: its wait for batch_seconds (2 s) is not throughput
            result.end_to_end.append(EndToEnd(name, st.messages, st.busy_seconds(), st.last_wait))
        if arrow_ticks:
            arrow_topic = f"{topic}-arrow"
            log(f"producing {arrow_ticks:,} ticks to {arrow_topic}, Arrow, {ARROW_PER_MESSAGE:,} per message at most")
            feed = SyntheticFeed(ticks=arrow_ticks, seed=43, chunk=min(arrow_ticks, 200_000))
            arep = produce(
                bootstrap, arrow_topic, feed.batches(), encoding="arrow", ticks_per_message=ARROW_PER_MESSAGE
            )
            result.arrow_ticks, result.arrow_messages = arep.ticks, arep.produced
            result.arrow_produce_seconds = arep.seconds
            log("ceiling: consume the Arrow messages and read their tables, nothing else")
            _, result.arrow_consume_seconds = _consume_only(bootstrap, arrow_topic, arep.produced, read_arrow=True)
            log("end to end into duckdb, Arrow")
            settings = Settings(home=work / "duckdb-arrow")
            sink = DuckDBSink(settings)
            try:
                ing = Ingestor([sink], bootstrap=bootstrap, topic=arrow_topic, group=f"arrow-{topic}",
                               stop_when_idle=2.0, batch_rows=200)  # fmt: skip
                st = ing.run()
            finally:
                sink.close()
            result.arrow_end_to_end = EndToEnd("duckdb", arep.ticks, st.busy_seconds(), st.last_wait)
        log("ClickHouse: INSERT … SELECT FROM file(parquet) vs wh's insert path")
        parquet = synthetic_parquet(work / "pq", ticks, trade_ratio=0.0)[Kind.QUOTE].path
        ch = ClickHouseSink(Settings(home=work / "chins"))
        try:
            ch.engine.command("CREATE TABLE wh.ceiling AS wh.market_ticks")
            t = time.perf_counter()
            ch.engine.client.command("INSERT INTO wh.ceiling SELECT * FROM file({path:String}, Parquet)",
                                     parameters={"path": str(parquet.resolve())})  # fmt: skip
            result.clickhouse_file_seconds = time.perf_counter() - t
            table = prepare("market_ticks", pq.read_table(parquet))
            t = time.perf_counter()
            ch.write({"market_ticks": table})
            result.clickhouse_wh_seconds = time.perf_counter() - t
            for name in ("market_ticks", "instruments", "quote_zscores"):  # again, without the z-scores
                ch.engine.command(f"TRUNCATE TABLE wh.{name}")
            ch.zscores = None
            t = time.perf_counter()
            ch.write({"market_ticks": table})
            result.clickhouse_ticks_seconds = time.perf_counter() - t
        finally:
            ch.close()
            close_embedded()
        result.peak_rss_mb = peak_rss_mb()
    finally:
        if broker is not None:
            broker.close()
        shutil.rmtree(work, ignore_errors=True)
    return result
