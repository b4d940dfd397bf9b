"""Kafka ingestion against the embedded broker (real protocol) into DuckDB and chdb.

The broker runs in its own process (`wh broker`), the producer is `wh feed`'s code or
kcat, the consumer is `wh ingest` — in this process, or as a subprocess that the crash
tests kill with SIGKILL.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
from servers import kafka_fixture

from warehouse.config import Settings
from warehouse.ingest.kafka import produce
from warehouse.ingest.synthetic import FaultRates, SyntheticFeed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.clickhouse]

STATELESS_BAD = ("non_finite", "non_positive", "crossed_book", "unknown_asset_class", "timestamp_window")
WH = [sys.executable, "-m", "warehouse.cli.main"]


def labelled_feed(
    ticks: int, seed: int, duration_s: float = 86_400.0, **faults: float
) -> tuple[SyntheticFeed, pl.DataFrame]:
    feed = SyntheticFeed(ticks=ticks, seed=seed, chunk=10_000, faults=FaultRates(**faults), bad_kinds=STATELESS_BAD,
                         duration_s=duration_s)  # fmt: skip
    labels = pl.concat([b.rows.select("_expected") for b in feed.batches()])
    return feed, labels


def counts(settings: Settings) -> dict[str, dict[str, int]]:
    """Per engine: ticks, distinct dedup keys, rejects."""
    from warehouse.sql.engines import close_embedded, open_engine

    out = {}
    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, settings, read_only=True)
        try:
            q = pl.from_arrow(eng.query(
                "SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades) AS n, "
                "(SELECT count(*) FROM (SELECT DISTINCT exchange, symbol, timestamp, coalesce(seq, -1) FROM wh.market_ticks)) + "
                "(SELECT count(*) FROM (SELECT DISTINCT exchange, symbol, timestamp, trade_id FROM wh.trades)) AS d, "
                "(SELECT count(*) FROM wh.rejects) AS r, "
                "(SELECT count(*) FROM (SELECT DISTINCT source, source_offset, rule FROM wh.rejects)) AS rd"
            ))  # fmt: skip
            assert isinstance(q, pl.DataFrame)
            out[engine] = q.row(0, named=True)
        finally:
            eng.close()
    close_embedded()
    return out


def ingest_in_process(settings: Settings, broker: str, topic: str, **kw):
    from warehouse.ingest.consumer import Ingestor
    from warehouse.sinks import open_sinks

    sinks = open_sinks(["duckdb", "clickhouse"], settings)
    try:
        ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=kw.pop("group", f"g-{topic}"), batch_rows=kw.pop("batch_rows", 5_000),
                       batch_seconds=kw.pop("batch_seconds", 0.5), stop_when_idle=kw.pop("stop_when_idle", 2.0), **kw)  # fmt: skip
        return ing, ing.run()
    finally:
        for s in sinks:
            s.close()


def test_n_ticks_in_exactly_n_out_plus_rejects(home: Path, broker: str, topic: str) -> None:
    feed, labels = labelled_feed(20_000, seed=21, bad=0.01, duplicate=0.01)
    report = produce(broker, topic, feed.batches(), malformed_every=997)
    assert report.failed == 0 and report.delivered == report.produced == labels.height + report.malformed
    settings = Settings(home=home)
    lags: list[int | None] = []
    _, stats = ingest_in_process(settings, broker, topic, on_batch=lambda st: lags.append(st.lag))
    good = labels.filter(pl.col("_expected").is_null()).height
    bad = labels.height - good
    assert stats.messages == report.produced
    # lag from the watermarks fetches bring back (no broker round trip): a backlog, then none
    assert lags[0] is not None and lags[0] > 0 and stats.lag == 0, (lags, stats.lag)
    for engine, c in counts(settings).items():
        assert c["n"] == c["d"] == good, engine
        assert c["r"] == c["rd"] == bad + report.malformed, engine


def test_arrow_encoding_n_ticks_in_exactly_n_out_plus_rejects(home: Path, broker: str, topic: str) -> None:
    """`wh feed --encoding arrow`: 500 ticks of one instrument per message, a cut message every
    ~5,000 ticks; the same counts as one JSON tick per message."""
    feed, labels = labelled_feed(20_000, seed=22, bad=0.01, duplicate=0.01)
    report = produce(broker, topic, feed.batches(), malformed_every=4_999, encoding="arrow", ticks_per_message=500)
    assert report.failed == 0 and report.ticks == labels.height and report.malformed >= 3
    assert report.produced == report.delivered < labels.height // 20  # many ticks per message
    settings = Settings(home=home)
    _, stats = ingest_in_process(settings, broker, topic)
    good = labels.filter(pl.col("_expected").is_null()).height
    assert stats.messages == report.produced
    for engine, c in counts(settings).items():
        assert c["n"] == c["d"] == good, engine
        assert c["r"] == c["rd"] == labels.height - good + report.malformed, engine


def test_duplicates_and_late_ticks_are_stored_once_in_place(home: Path, broker: str, topic: str) -> None:
    # dense: 10k ticks in 5 minutes, so a tick moved back by < 2.5 s lands before its predecessors
    feed, labels = labelled_feed(10_000, seed=5, duration_s=300.0, duplicate=0.03, out_of_order=0.03)
    produce(broker, topic, feed.batches())
    settings = Settings(home=home)
    ingest_in_process(settings, broker, topic)
    good = labels.filter(pl.col("_expected").is_null()).height
    for engine, c in counts(settings).items():
        assert c["n"] == c["d"] == good, engine
    # late-but-within-tolerance ticks are stored at their event time: the table in event-time
    # order has them before ticks that arrived earlier
    from warehouse.sql.engines import DuckDBEngine

    eng = DuckDBEngine(settings.duckdb_path, read_only=True)
    try:
        late = (
            eng.query(
                "SELECT count(*) AS n FROM (SELECT seq, lag(seq) OVER (PARTITION BY symbol ORDER BY timestamp, received_at) "
                "AS prev FROM wh.market_ticks) WHERE seq < prev"
            )
            .column("n")[0]
            .as_py()
        )
    finally:
        eng.close()
    assert late > 0


def test_sink_outage_pauses_keeps_offsets_and_loses_nothing(home: Path, broker: str, topic: str, monkeypatch) -> None:
    from warehouse.errors import SinkError
    from warehouse.ingest.kafka import committed_offsets
    from warehouse.sinks.clickhouse import ClickHouseSink

    feed, labels = labelled_feed(15_000, seed=8, bad=0.01)
    produce(broker, topic, feed.batches())
    real = ClickHouseSink._append
    state = {"failures": 0}
    outage_until = [0.0]

    def flaky(self, table, data, position=None):
        if outage_until[0] == 0.0:
            outage_until[0] = time.monotonic() + 3.0
        if time.monotonic() < outage_until[0]:
            state["failures"] += 1
            raise SinkError("clickhouse", "injected outage")
        return real(self, table, data, position)

    monkeypatch.setattr(ClickHouseSink, "_append", flaky)
    during: list[dict[int, int]] = []

    def on_retry(sink, attempt, delay, exc):
        during.append(committed_offsets(broker, topic, f"g-{topic}"))

    settings = Settings(home=home)
    _, stats = ingest_in_process(settings, broker, topic, retry_base=0.2, retry_max=1.0, on_retry=on_retry)
    assert state["failures"] >= 3 and stats.retries >= 3
    assert during and all(d == {} for d in during)  # nothing committed while ClickHouse was down
    good = labels.filter(pl.col("_expected").is_null()).height
    for engine, c in counts(settings).items():
        assert c["n"] == c["d"] == good, engine
    assert sum(committed_offsets(broker, topic, f"g-{topic}").values()) == labels.height


def test_backoff_formula() -> None:
    from warehouse.backoff import backoff

    rng = random.Random(1)
    for attempt, expected in ((0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0)):
        d = backoff(attempt, 0.5, 30.0, rng)
        assert expected <= d < expected + 0.5


def _crash_run(home: Path, broker: str, topic: str, kills: int, ticks: int, unsafe: bool, seed: int,
               rate: float | None = None, busy: tuple[float, float] = (0.0, 1.2),
               batch_rows: int = 2_000, encoding: str = "json", out_of_order: float = 0.0,
               ) -> tuple[dict, int]:  # fmt: skip
    """Produce (all first, or concurrently at `rate` — the mock broker keeps ~5 MB per
    partition, so a big load must be consumed while it is produced), kill the consumer
    `kills` times while it works, then let a last run finish; return per-engine counts."""
    import threading

    feed, labels = labelled_feed(ticks, seed=seed, bad=0.01, duplicate=0.01, out_of_order=out_of_order)
    reports = []
    producer = threading.Thread(
        target=lambda: reports.append(
            produce(broker, topic, feed.batches(), rate=rate, encoding=encoding, ticks_per_message=200)
        )
    )
    producer.start()
    if rate is None:
        producer.join()
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    if unsafe:
        env["WH_DEBUG_DELAY_AFTER_COMMIT"] = "1.0"  # widen the commit-before-write window
    cmd = [
        *WH,
        "ingest",
        "--topic",
        topic,
        "--group",
        f"g-{topic}",
        "--instance-id",
        "crash-test",
        "--batch-rows",
        str(batch_rows),
        "--batch-seconds",
        "0.3",
        "--stop-when-idle",
        "3",
    ]
    cmd += ["--debug-commit-before-write"] if unsafe else []
    rng = random.Random(seed)
    killed_busy = 0
    for _ in range(kills):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        # kill at a random moment while batches are flowing (after the first one is stored)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line or line.startswith("batch "):
                break
        if proc.poll() is None:
            time.sleep(rng.uniform(*busy))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed_busy += 1
        proc.wait()
    assert killed_busy >= kills // 2, f"only {killed_busy} of {kills} kills hit a working consumer"
    producer.join()
    assert reports and reports[0].failed == 0
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    good = labels.filter(pl.col("_expected").is_null()).height
    return counts(Settings(home=home)), good


def assert_stored_zscores(settings: Settings) -> None:
    """The stored z-score invariant (zscore_check.py) on both engines."""
    from zscore_check import assert_stored_zscores_match

    from warehouse.sql.engines import close_embedded, open_engine

    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, settings, read_only=True)
        try:
            assert assert_stored_zscores_match(eng) > 0, engine
        finally:
            eng.close()
    close_embedded()


@pytest.mark.slow
def test_sigkill_ten_times_loses_and_doubles_nothing(home: Path, broker: str, topic: str) -> None:
    """… and the stored z-scores equal the reference afterwards: 2 % of the ticks arrive late
    (half within the out-of-order tolerance: stored, rewriting their followers' z-scores),
    and every restart starts with cold ring buffers."""
    result, good = _crash_run(home, broker, topic, kills=10, ticks=60_000, unsafe=False, seed=31,
                              out_of_order=0.02)  # fmt: skip
    for engine, c in result.items():
        assert c["n"] == c["d"] == good, (engine, c, good)
        assert c["r"] == c["rd"], engine
    assert_stored_zscores(Settings(home=home))


@pytest.mark.slow
def test_sigkill_six_times_with_the_arrow_encoding_loses_and_doubles_nothing(home: Path, broker: str,
                                                                            topic: str) -> None:  # fmt: skip
    """The same guarantee when 200 ticks travel in one Arrow message: a kill can fall inside a
    message's rows, the retried batch re-reads the message whole, and each bad row's reject
    keeps its own key (message position + row)."""
    result, good = _crash_run(home, broker, topic, kills=6, ticks=60_000, unsafe=False, seed=33, encoding="arrow",
                              batch_rows=20, out_of_order=0.02)  # fmt: skip
    for engine, c in result.items():
        assert c["n"] == c["d"] == good, (engine, c, good)
        assert c["r"] == c["rd"] > 0, engine
    assert_stored_zscores(Settings(home=home))


@pytest.mark.slow
def test_negative_control_commit_before_write_fails_the_same_check(home: Path, broker: str, topic: str) -> None:
    result, good = _crash_run(home, broker, topic, kills=10, ticks=60_000, unsafe=True, seed=32)
    assert any(c["n"] != good or c["d"] != good for c in result.values()), result


@pytest.mark.slow
def test_sigkill_twenty_times_over_a_million_ticks(home: Path, broker: str, topic: str) -> None:
    """On a real Kafka (CI) the million is produced first, no pacing: the consumer starts with
    all of it waiting, and every restart re-cuts the interrupted batch at once (it pauses the
    partitions it does not need; before, a real broker's bulk fetch of one partition made it
    wait up to 30 s). The embedded mock keeps ~5 MB per partition, so there it must be consumed
    while it is produced (4,000/s)."""
    from servers import real_broker

    real = broker == real_broker()
    result, good = _crash_run(
        home,
        broker,
        topic,
        kills=20,
        ticks=1_000_000,
        unsafe=False,
        seed=33,
        rate=None if real else 4_000,
        # all of it waiting, the consumer stores ~25 k/s: kill within a second of the first batch,
        # or six runs would finish the million (measured) and the later kills hit nothing
        busy=(0.0, 1.0) if real else (1.0, 8.0),
        batch_rows=20_000,
    )
    for engine, c in result.items():
        assert c["n"] == c["d"] == good, (engine, c, good)


def test_kcat_produces_and_wh_ingests(home: Path, broker: str, topic: str) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (Debian package kcat; .ci/run installs it)")
    from warehouse.ingest.kafka import encode

    feed = SyntheticFeed(ticks=3_000, seed=2)
    lines = []
    for b in feed.batches():
        rows = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        for sym, msg in zip(rows["symbol"], encode(rows, b.kind), strict=True):
            lines.append(f"{sym}\t{msg}")
    subprocess.run([kcat, "-P", "-b", broker, "-t", topic, "-K", "\t"], input="\n".join(lines) + "\n",
                   text=True, check=True, timeout=60)  # fmt: skip
    settings = Settings(home=home)
    _, stats = ingest_in_process(settings, broker, topic)
    assert stats.messages == 3_000
    for engine, c in counts(settings).items():
        assert c["n"] == c["d"] == 3_000, engine


def test_queries_and_status_answer_while_ingest_runs(home: Path, broker: str, topic: str) -> None:
    """Local mode: ingest serves ClickHouse over HTTP and holds DuckDB only per batch."""
    import threading
    import urllib.error
    import urllib.request

    feed, labels = labelled_feed(24_000, seed=9, bad=0.01)
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker, "WH_KAFKA_TOPIC": topic,
           "WH_KAFKA_GROUP": f"g-{topic}"}  # fmt: skip
    producer = threading.Thread(target=lambda: produce(broker, topic, feed.batches(), rate=1_000), daemon=True)
    producer.start()
    proc = subprocess.Popen([*WH, "ingest", "--batch-seconds", "0.5"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    first_batch = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("batch "):
                first_batch.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert first_batch.wait(60), "".join(lines)
        # the served ClickHouse: address without password, passwords in a 0600 file, no anonymous access
        url = (home / "clickhouse.url").read_text().strip()
        assert url.startswith("http://127.0.0.1:") and "@" not in url
        assert (home / "clickhouse.secret").stat().st_mode & 0o777 == 0o600
        try:
            urllib.request.urlopen(f"{url}/?query=SELECT%201", timeout=30)
            raise AssertionError("the local ClickHouse server answered an unauthenticated query")
        except urllib.error.HTTPError as exc:
            assert exc.code in (401, 403), exc.code
        for args in (["query", "zscore", "BTCUSDT", "--engine", "duckdb", "--limit", "3"],
                     ["query", "zscore", "BTCUSDT", "--engine", "clickhouse", "--limit", "3"],
                     ["sql", "SELECT count() AS n FROM wh.market_ticks", "--engine", "clickhouse"],
                     ["status"]):  # fmt: skip
            t = time.perf_counter()
            r = subprocess.run([*WH, *args], env=env, capture_output=True, text=True, timeout=60)
            elapsed = time.perf_counter() - t
            assert r.returncode == 0, (args, r.stdout, r.stderr)
            assert elapsed < 8, (args, elapsed)  # a couple of seconds, most of it Python start-up
        assert producer.is_alive(), "the feed ended before the reads: they did not overlap the ingest"
        producer.join(120)
        good = labels.filter(pl.col("_expected").is_null()).height
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and counts_via_cli(env) < good:
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines[-20:])
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (home / "clickhouse.url").exists() and not (home / "clickhouse.secret").exists()
    for engine, c in counts(Settings(home=home)).items():
        assert c["n"] == c["d"] == good, engine


def counts_via_cli(env: dict[str, str]) -> int:
    """Stored ticks on DuckDB, read by another process (as a user would)."""
    r = subprocess.run([*WH, "status"], env=env, capture_output=True, text=True, timeout=60)
    for line in r.stdout.splitlines():
        if line.lstrip("│ ").startswith("duckdb"):
            cells = [c.strip().replace(",", "") for c in line.split("│") if c.strip()]
            return int(cells[1]) + int(cells[2]) if cells[1].isdigit() else 0
    return 0


def test_after_a_crash_the_first_batch_is_cut_where_the_interrupted_one_was(
    home: Path, broker: str, topic: str
) -> None:
    import json

    from warehouse.ingest.consumer import Ingestor
    from warehouse.sinks import MemorySink

    feed = SyntheticFeed(ticks=5_000, seed=12)
    produce(broker, topic, feed.batches())
    plan_dir = home / "ingest"
    plan_dir.mkdir(parents=True)
    group = f"g-{topic}"
    (plan_dir / f"{group}__{topic}.plan.json").write_text(json.dumps({"ranges": {"0": [0, 99], "2": [0, 49]}}))

    class Recording(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.positions: list = []

        def write(self, batch, position=None):
            self.positions.append(position)
            return super().write(batch, position)

    sink = Recording()
    ing = Ingestor([sink], bootstrap=broker, topic=topic, group=group, batch_rows=50_000, batch_seconds=0.5,
                   stop_when_idle=2.0, plan_dir=plan_dir)  # fmt: skip
    stats = ing.run()
    assert sink.positions[0].ranges == {0: (0, 99), 2: (0, 49)}
    assert stats.messages == 5_000
    assert sink.tables["market_ticks"].num_rows + sink.tables["trades"].num_rows == 5_000


def test_clickhouse_drops_a_retried_insert_with_the_same_token(home: Path) -> None:
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sinks.base import StreamPosition
    from warehouse.sql.engines import ClickHouseEngine
    from warehouse.sql.migrate import migrate

    settings = Settings(home=home)
    eng = ClickHouseEngine(settings)
    migrate(eng)
    rows = pl.DataFrame({"timestamp": [1_700_000_000_000_000_000], "received_at": [1_700_000_000_000_000_001],
                         "exchange": ["x"], "symbol": ["S"], "asset_class": ["crypto"], "bid": [1.0], "ask": [2.0],
                         "bid_size": [1.0], "ask_size": [1.0], "seq": [1]})  # fmt: skip
    table = (
        rows.with_columns(pl.col("timestamp", "received_at").cast(pl.Datetime("ns", "UTC")))
        .to_arrow()
        .cast(QUOTE_SCHEMA)
    )
    token = StreamPosition("g", "t", {0: (0, 0)}).token("market_ticks")
    for _ in range(2):
        eng.insert("wh.market_ticks", table, dedup_token=token)
    assert eng.query("SELECT count() AS n FROM wh.market_ticks").column("n")[0].as_py() == 1


def _verdicts(home: Path) -> dict[str, tuple[int, set[tuple[str, int, str]]]]:
    """Per engine: ticks stored, and every reject as (source, offset, rule)."""
    from warehouse.sql.engines import close_embedded, open_engine

    out = {}
    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, Settings(home=home), read_only=True)
        try:
            n = eng.query("SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades) AS n")
            rej = pl.from_arrow(eng.query("SELECT source, source_offset, rule FROM wh.rejects"))
            assert isinstance(rej, pl.DataFrame)
            out[engine] = (int(n.column(0)[0].as_py()), set(rej.iter_rows()))
        finally:
            eng.close()
    close_embedded()
    return out


def _stateful_feed(topic: str, broker: str, ticks: int = 12_000) -> int:
    # dense (ticks within 5 minutes) with every stateful fault: duplicates, late ticks, spikes
    feed = SyntheticFeed(ticks=ticks, seed=44, chunk=3_000, duration_s=300.0,
                         faults=FaultRates(bad=0.02, duplicate=0.03, out_of_order=0.03, gap=0.01))  # fmt: skip
    report = produce(broker, topic, feed.batches())
    assert report.failed == 0
    return report.produced


@pytest.mark.slow
def test_restarts_change_no_verdict(home: Path, tmp_path: Path, broker: str, topic: str) -> None:
    """The stateful rules (duplicate, out_of_order, spike, gaps) resume with the state stored
    beside the offsets: a consumer restarted after every batch judges every tick exactly as
    one that never stopped (before, they restarted empty: a late tick or a spike right after
    a restart was stored, a duplicate not reported)."""
    from warehouse.ingest.consumer import Ingestor
    from warehouse.sinks import open_sinks

    _stateful_feed(topic, broker, ticks=6_000)
    reference = tmp_path / "reference"
    ingest_in_process(Settings(home=reference), broker, topic, batch_rows=50_000, group=f"ref-{topic}")
    settings = Settings(home=home)
    runs = 0
    while True:
        stop = threading.Event()
        sinks = open_sinks(["duckdb", "clickhouse"], settings)
        try:
            ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=f"g-{topic}", batch_rows=600 + 137 * runs,
                           batch_seconds=5.0, stop_when_idle=2.0, on_batch=lambda _s, stop=stop: stop.set())  # fmt: skip
            stats = ing.run(stop)
        finally:
            for s in sinks:
                s.close()
        runs += 1
        if stats.messages == 0:
            break
    assert runs > 5
    want, got = _verdicts(reference), _verdicts(home)
    for engine in ("duckdb", "clickhouse"):
        n_ref, rej_ref = want[engine]
        n, rej = got[engine]
        rules = {r for _, _, r in rej_ref}
        assert {"duplicate", "out_of_order", "spike"} <= rules, rules
        assert rej == rej_ref, (engine, sorted(rej ^ rej_ref)[:10])
        assert n == n_ref, engine


@pytest.mark.slow
def test_sigkill_changes_no_verdict(home: Path, tmp_path: Path, broker: str, topic: str) -> None:
    """The same with SIGKILL of `wh ingest` at random moments (crashes before and after the
    DuckDB commit, batches replayed from the plan file)."""
    _stateful_feed(topic, broker)
    reference = tmp_path / "reference"
    ingest_in_process(Settings(home=reference), broker, topic, batch_rows=50_000, group=f"ref-{topic}")
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    cmd = [*WH, "ingest", "--topic", topic, "--group", f"g-{topic}", "--batch-rows", "800",
           "--batch-seconds", "0.3", "--stop-when-idle", "3"]  # fmt: skip
    rng = random.Random(7)
    for _ in range(6):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        while (line := proc.stderr.readline()) and not line.startswith("batch "):
            pass
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    want, got = _verdicts(reference), _verdicts(home)
    for engine in ("duckdb", "clickhouse"):
        assert got[engine][1] == want[engine][1], engine
        assert got[engine][0] == want[engine][0], engine


# -- scale-out: one group, several processes, a real broker ------------------------------------

kafka = kafka_fixture()


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, f"wh ingest exited ({proc.returncode}): {path.read_text()[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path} within {timeout} s: {path.read_text()[-2000:]}")


@pytest.mark.slow
def test_three_consumers_over_twelve_partitions_survive_kills_and_rebalances(home: Path, tmp_path: Path,
                                                                             kafka: str) -> None:  # fmt: skip
    """3 `wh ingest` processes in one group on a 12-partition topic of a real Apache Kafka, into
    DuckDB (offsets with the rows, shared file) and a ClickHouse server: one SIGKILLed, one
    stopped with SIGTERM, one SIGKILLed again, each replaced while the others consume
    (cooperative-sticky: a rebalance moves only the partitions that change owner). Every
    sink ends with count == distinct == produced − rejected, and the group has committed all."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from warehouse.config import ClickHouseSettings
    from warehouse.ingest.kafka import committed_offsets, group_positions
    from warehouse.sql.chserver import LocalClickHouseServer

    topic = f"scale-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka, "log_level": "3"})
    admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=1)])[topic].result(30)
    feed, labels = labelled_feed(300_000, seed=44, bad=0.01)  # stateless faults: verdicts need no state
    report = produce(kafka, topic, feed.batches())
    assert report.failed == 0 and report.produced == labels.height
    good = labels.filter(pl.col("_expected").is_null()).height
    with LocalClickHouseServer(tmp_path / "clickhouse") as ch:
        env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": kafka,
               "WH_CLICKHOUSE_URL": ch.dsn().get_secret_value(), "WH_KAFKA_SESSION_TIMEOUT_MS": "6000"}  # fmt: skip
        subprocess.run([*WH, "migrate", "--engine", "all"], env=env, check=True, capture_output=True)
        cmd = [*WH, "ingest", "--topic", topic, "--group", f"g-{topic}", "--sinks", "duckdb,clickhouse",
               "--batch-rows", "5000", "--batch-seconds", "0.5", "--stop-when-idle", "15"]  # fmt: skip
        procs: list[subprocess.Popen] = []
        logs: list[Path] = []

        def start() -> int:
            i = len(procs)
            logs.append(tmp_path / f"ingest-{i}.log")
            with logs[i].open("w") as f:
                procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=f, text=True))
            return i

        first = [start() for _ in range(3)]
        for i in first:
            _wait_for(logs[i], "batch ", procs[i])
        rng = random.Random(44)
        for victim, sig in ((0, signal.SIGKILL), (1, signal.SIGTERM), (2, signal.SIGKILL)):
            time.sleep(rng.uniform(0.5, 2.0))
            assert procs[victim].poll() is None, f"consumer {victim} finished before it could be stopped"
            procs[victim].send_signal(sig)
            procs[victim].wait(timeout=60)
            new = start()
            _wait_for(logs[new], "assigned ", procs[new])
        codes = [p.wait(timeout=900) for p in procs]
        assert codes[0] == -signal.SIGKILL and codes[1] == 0 and codes[2] == -signal.SIGKILL, codes
        assert codes[3:] == [0, 0, 0], [logs[i].read_text()[-1500:] for i in range(3, 6)]
        # cooperative rebalancing: a consumer that lived through others' kills got partitions
        # added without first giving all of its own up
        assigned = [logs[i].read_text().count("assigned ") for i in range(len(procs))]
        assert max(assigned) >= 2, assigned
        result = counts(Settings(home=home, clickhouse=ClickHouseSettings(url=ch.dsn(read_only=True))))
        for engine, c in result.items():
            assert c["n"] == c["d"] == good == report.produced - c["r"], (engine, c, good)
            assert c["r"] == c["rd"] == labels.height - good, (engine, c)
        assert sum(committed_offsets(kafka, topic, f"g-{topic}").values()) == report.produced
        status = subprocess.run([*WH, "status", "--topic", topic, "--group", f"g-{topic}"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert f"consumer lag of group g-{topic}" in status.stdout, status.stdout
        all_row = next(line for line in status.stdout.splitlines() if line.strip("│ ").startswith("all"))
        assert all_row.strip("│ ").split()[-1] == "0", status.stdout
        positions = group_positions(kafka, topic, f"g-{topic}")
        assert len(positions) == 12 and all(p.lag == 0 for p in positions.values()), positions
