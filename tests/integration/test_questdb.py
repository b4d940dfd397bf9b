"""The QuestDB hot tier against a real QuestDB 9.3.4 (tests/integration/servers.py: an address
from QDB_CLIENT_CONF / WH_TEST_QUESTDB_HTTP, else a server started here; never skipped in CI).

The tests share the server's wh_* tables (QuestDB has no schemas): each one drops and
re-creates them, so they run one at a time (as .ci/run does). WAL tables apply commits
asynchronously: every count waits for `wal_tables()` to show nothing pending (bounded).
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
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from reference import zscore_reference
from servers import questdb_fixture, unavailable

from warehouse.config import Settings
from warehouse.ingest.kafka import produce
from warehouse.ingest.synthetic import FaultRates, SyntheticFeed
from warehouse.records import SCHEMAS

pytestmark = [pytest.mark.integration, pytest.mark.questdb]

questdb = questdb_fixture()
WH = [sys.executable, "-m", "warehouse.cli.main"]
STATELESS_BAD = ("non_finite", "non_positive", "crossed_book", "unknown_asset_class", "timestamp_window")
TABLES = ("wh_market_ticks", "wh_trades", "wh_rejects", "wh_schema_migrations")


def reset(engine) -> None:
    for t in TABLES:
        engine.command(f"DROP TABLE IF EXISTS {t}")


@pytest.fixture
def qdb(questdb, monkeypatch: pytest.MonkeyPatch):
    """QDB_CLIENT_CONF for this process and its children; wh's QuestDB tables dropped first."""
    from warehouse.sql.engines import QuestDBEngine

    monkeypatch.setenv("QDB_CLIENT_CONF", questdb.client_conf)
    engine = QuestDBEngine()
    reset(engine)
    yield engine
    engine.close()


def migrated(engine) -> None:
    from warehouse.sql.migrate import migrate

    assert migrate(engine) == ["001_ticks.sql"]


def labelled_feed(ticks: int, seed: int, **faults: float) -> tuple[SyntheticFeed, pl.DataFrame]:
    feed = SyntheticFeed(ticks=ticks, seed=seed, chunk=10_000, faults=FaultRates(**faults), bad_kinds=STATELESS_BAD)
    return feed, pl.concat([b.rows.select("_expected") for b in feed.batches()])


def qdb_counts(engine) -> dict[str, int]:
    """Ticks, distinct dedup keys (records.py's: seq is set on every synthetic quote), rejects,
    distinct reject keys — after the WAL has applied everything committed."""
    engine.wait_applied(timeout=60)
    one = lambda sql: int(engine.query(sql).column(0)[0].as_py())  # noqa: E731
    return {
        "n": one("SELECT count() FROM wh.market_ticks") + one("SELECT count() FROM wh.trades"),
        "d": one("SELECT count() FROM (SELECT DISTINCT exchange, symbol, timestamp, seq FROM wh.market_ticks)")
        + one("SELECT count() FROM (SELECT DISTINCT exchange, symbol, timestamp, trade_id FROM wh.trades)"),
        "r": one("SELECT count() FROM wh.rejects"),
        "rd": one("SELECT count() FROM (SELECT DISTINCT source, source_offset, rule FROM wh.rejects)"),
    }


def embedded_counts(settings: Settings, engines: tuple[str, ...]) -> dict[str, dict[str, int]]:
    from warehouse.sql.engines import close_embedded, open_engine

    out = {}
    for name in engines:
        eng = open_engine(name, settings, read_only=True)
        try:
            row = eng.query(
                "SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades) AS n, "
                "(SELECT count(*) FROM (SELECT DISTINCT exchange, symbol, timestamp, coalesce(seq, -1) FROM wh.market_ticks)) + "
                "(SELECT count(*) FROM (SELECT DISTINCT exchange, symbol, timestamp, trade_id FROM wh.trades)) AS d, "
                "(SELECT count(*) FROM wh.rejects) AS r"
            ).to_pylist()[0]  # fmt: skip
            out[name] = {k: int(v) for k, v in row.items()}
        finally:
            eng.close()
    close_embedded()
    return out


def row_keys(settings: Settings, qdb) -> dict[str, set[tuple]]:
    """Every stored tick's dedup key and price, per engine (QuestDB, DuckDB, ClickHouse): the
    same rows everywhere, not just the same counts."""
    from warehouse.sql.engines import close_embedded, open_engine

    sql = ("SELECT 'q' AS k, exchange, symbol, timestamp, seq AS id, bid AS price FROM wh.market_ticks "
           "UNION ALL SELECT 't' AS k, exchange, symbol, timestamp, trade_id AS id, price FROM wh.trades")  # fmt: skip

    def keys(table: pa.Table) -> set[tuple]:
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        df = df.with_columns(pl.col("timestamp").dt.epoch("ns"), pl.col("id").cast(pl.String))
        return set(df.iter_rows())

    qdb.wait_applied(timeout=60)
    out = {"questdb": keys(qdb.query(sql.replace("seq AS id", "cast(seq AS string) AS id")))}
    for name in ("duckdb", "clickhouse"):
        eng = open_engine(name, settings, read_only=True)
        try:
            out[name] = keys(eng.query(sql.replace("seq AS id", "CAST(seq AS VARCHAR) AS id")
                                       if name == "duckdb" else sql.replace("seq AS id", "toString(seq) AS id")))  # fmt: skip
        finally:
            eng.close()
    close_embedded()
    return out


# -- DDL and migrations ------------------------------------------------------------------------


def test_wh_migrate_creates_dedup_wal_tables_once_and_refuses_edits(qdb, home: Path, tmp_path: Path) -> None:
    from warehouse.errors import MigrationError
    from warehouse.sql.files import ddl_dir
    from warehouse.sql.migrate import migrate

    env = {**os.environ, "WH_HOME": str(home)}
    first = subprocess.run(
        [*WH, "migrate", "--engine", "questdb"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "questdb: applied 001_ticks.sql"
    again = subprocess.run(
        [*WH, "migrate", "--engine", "questdb"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stdout.strip() == "questdb: up to date", again.stderr

    meta = {r["table_name"]: r for r in qdb.query(
        "SELECT table_name, designatedTimestamp, partitionBy, walEnabled, dedup FROM tables()").to_pylist()}  # fmt: skip
    for t in ("wh_market_ticks", "wh_trades", "wh_rejects"):
        assert (meta[t]["designatedTimestamp"], meta[t]["partitionBy"], meta[t]["walEnabled"], meta[t]["dedup"]) == \
            ("timestamp", "DAY", True, True), meta[t]  # fmt: skip
    keys = {t: {r["column"] for r in qdb.query(f"SELECT \"column\" FROM table_columns('{t}') WHERE upsertKey").to_pylist()}
            for t in ("wh_market_ticks", "wh_trades", "wh_rejects")}  # fmt: skip
    assert keys == {
        "wh_market_ticks": {
            "timestamp",
            "exchange",
            "symbol",
            "seq",
            "received_at",
            "bid",
            "ask",
            "bid_size",
            "ask_size",
        },
        "wh_trades": {"timestamp", "exchange", "symbol", "trade_id"},
        "wh_rejects": {"timestamp", "source", "source_offset", "rule"},
    }
    types = {
        r["column"]: r["type"] for r in qdb.query("SELECT \"column\", type FROM table_columns('wh_trades')").to_pylist()
    }
    assert types["timestamp"] == types["received_at"] == "TIMESTAMP_NS" and types["trade_id"] == "VARCHAR"
    assert types["exchange"] == types["symbol"] == types["side"] == "SYMBOL"

    edited = tmp_path / "ddl"
    shutil.copytree(ddl_dir("questdb"), edited)
    (edited / "001_ticks.sql").write_text((edited / "001_ticks.sql").read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="has changed since"):
        migrate(qdb, edited)

    qdb.command("DROP TABLE wh_trades")  # behind wh's back: "up to date" would be a dead end
    with pytest.raises(MigrationError, match=r"wh\.trades missing although .*DROP TABLE wh_schema_migrations"):
        migrate(qdb)
    qdb.command("DROP TABLE wh_schema_migrations")
    assert migrate(qdb) == ["001_ticks.sql"] and "wh.trades" in qdb.tables()


def test_tables_come_from_ddl_only(qdb) -> None:
    """The sink refuses to open without the DDL; ILP cannot create a table on wh's servers."""
    from warehouse.errors import ConfigError, RowRefusedError, SinkError
    from warehouse.sinks import open_sinks

    with pytest.raises(ConfigError, match="wh migrate --engine questdb"):
        open_sinks(["questdb"], Settings())
    auto = {r["property_path"]: r["value"] for r in qdb.query(
        "SELECT property_path, value FROM (SHOW PARAMETERS) WHERE property_path = 'line.auto.create.new.tables'"
    ).to_pylist()}  # fmt: skip
    assert auto == {"line.auto.create.new.tables": "false"}, (
        "QuestDB not started by wh (QDB_LINE_AUTO_CREATE_NEW_TABLES)"
    )
    rows = pa.Table.from_pylist([{"timestamp": 1, "received_at": 1, "exchange": "x", "symbol": "y", "asset_class": "crypto",
                                  "bid": 1.0, "ask": 2.0, "bid_size": None, "ask_size": None, "seq": 1}],
                                schema=SCHEMAS["market_ticks"])  # fmt: skip
    with pytest.raises(SinkError, match="table does not exist") as err:
        qdb.insert("wh.market_ticks", rows)
    assert not isinstance(err.value, RowRefusedError)  # a missing table is no reason to reject a row
    assert "wh_market_ticks" not in {r["table_name"] for r in qdb.query("SELECT table_name FROM tables()").to_pylist()}
    migrated(qdb)
    qdb.command("DROP TABLE wh_trades")
    with pytest.raises(ConfigError, match="no table wh_trades"):
        open_sinks(["questdb"], Settings())


# -- the sink ----------------------------------------------------------------------------------


def test_rows_round_trip_exactly_and_a_replay_adds_nothing(qdb) -> None:
    from warehouse.sinks import open_sinks

    migrated(qdb)
    t0 = 1_790_000_000_123_456_789
    quotes = pa.Table.from_pylist([
        {"timestamp": t0 + i, "received_at": t0 + 1_000 + i, "exchange": "ebs", "symbol": "EURUSD", "asset_class": "forex",
         "bid": 1.1 + i / 7, "ask": 1.2 + i / 7, "bid_size": None if i % 2 else 1e6 / 3, "ask_size": None if i % 2 else 0.1,
         "seq": None if i % 3 else i} for i in range(50)
    ], schema=SCHEMAS["market_ticks"])  # fmt: skip
    ids = ["t-0", "it's", 'q"q', "back\\slash", "tab\there", "new\nline", "é€😀", "", "x" * 3000, "comma,eq=sp ace"]
    trades = pa.Table.from_pylist([
        {"timestamp": t0 + i, "received_at": t0 + 7 + i, "exchange": "binance", "symbol": "ETHUSDT",
         "asset_class": "crypto", "trade_id": tid, "side": ("buy", "sell", "unknown")[i % 3], "price": 2000.0 + i * 0.01,
         "size": 0.1 * (i + 1), "seq": i * 2**40} for i, tid in enumerate(ids)
    ], schema=SCHEMAS["trades"])  # fmt: skip
    with open_sinks(["questdb"], Settings())[0] as sink:
        for _ in range(3):  # the first write, a retry, a replay after a crash: the same rows
            counts = sink.write({"market_ticks": quotes, "trades": trades})
            assert counts.stored == {"market_ticks": 50, "trades": len(ids)}
    assert qdb_counts(qdb) == {"n": 50 + len(ids), "d": 50 + len(ids), "r": 0, "rd": 0}
    got_q = qdb.query("SELECT * FROM wh.market_ticks ORDER BY timestamp")
    got_t = qdb.query("SELECT * FROM wh.trades ORDER BY timestamp")
    assert got_q.cast(SCHEMAS["market_ticks"]).equals(quotes)  # to the nanosecond and the last bit
    assert got_t.cast(SCHEMAS["trades"]).equals(trades)
    bound = qdb.query("SELECT trade_id FROM wh.trades WHERE trade_id = {id:String} AND timestamp >= {t:DateTime64(9)}",
                      {"id": "it's", "t": datetime(2026, 9, 21, tzinfo=UTC)})  # fmt: skip
    assert bound.column("trade_id").to_pylist() == ["it's"]


def test_a_type_conflict_row_goes_to_rejects_and_the_rest_is_stored(qdb, home: Path, broker: str, topic: str) -> None:
    """wh_trades.seq narrowed to INT (schema drift): a trade whose seq does not fit is refused by
    QuestDB (HTTP 400 naming its line); it becomes a wh.rejects row with QuestDB's text, every
    other row of the batch is stored, and the other sinks keep it."""
    from warehouse.ingest.consumer import Ingestor
    from warehouse.sinks import open_sinks

    migrated(qdb)
    qdb.command("ALTER TABLE wh_trades ALTER COLUMN seq TYPE INT")
    feed = SyntheticFeed(ticks=6_000, seed=4, chunk=2_000, trade_ratio=0.5)
    huge = {}

    def batches():
        for b in feed.batches():
            rows = b.rows
            if b.kind == "trade" and len(huge) < 3:
                i = rows.height // 2
                huge[rows["trade_id"][i]] = 2**40 + i
                rows = rows.with_columns(pl.when(pl.int_range(pl.len()) == i).then(2**40 + i).otherwise(pl.col("seq"))
                                         .alias("seq"))  # fmt: skip
            yield type(b)(b.kind, rows, b.rejects, b.progress)

    report = produce(broker, topic, batches())
    assert report.failed == 0 and len(huge) == 3
    settings = Settings(home=home)
    sinks = open_sinks(["questdb", "duckdb"], settings)
    try:
        ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=f"g-{topic}", batch_rows=2_500, batch_seconds=0.5,
                       stop_when_idle=2.0)  # fmt: skip
        stats = ing.run()
    finally:
        for s in sinks:
            s.close()
    assert stats.messages == report.produced and stats.rejected == 0
    duck = embedded_counts(settings, ("duckdb",))["duckdb"]
    assert duck["n"] == report.produced  # DuckDB's seq is BIGINT: every trade fits
    c = qdb_counts(qdb)
    assert c["n"] == c["d"] == report.produced - 3
    rejects = qdb.query("SELECT * FROM wh.rejects").to_pylist()
    assert len(rejects) == 3 and {r["rule"] for r in rejects} == {"questdb_refused"}
    for r in rejects:
        seq = next(v for k, v in huge.items() if f'trade_id="{k}"' in r["raw"])
        assert r["reason"] == (f"QuestDB refused the row: table: wh_trades, column: seq; line protocol value: {seq} "
                               "is out bounds of column type: INT")  # fmt: skip
        assert r["raw"].startswith("wh_trades,") and f"seq={seq}i" in r["raw"]
        assert r["source"] == "questdb:wh_trades" and r["kind"] == "trade"
    assert qdb.query("SELECT count() n FROM wh.trades WHERE seq > 2147483647").column("n")[0].as_py() == 0


# -- the exactly-once consumer -------------------------------------------------------------------


def _ingest_cmd(topic: str, sinks: str, *extra: str) -> list[str]:
    return [*WH, "ingest", "--topic", topic, "--group", f"g-{topic}", "--sinks", sinks, "--batch-rows", "2000",
            "--batch-seconds", "0.3", "--stop-when-idle", "3", *extra]  # fmt: skip


def test_wh_ingest_n_in_n_out_with_questdb_among_the_sinks(qdb, home: Path, broker: str, topic: str) -> None:
    migrated(qdb)
    feed, labels = labelled_feed(20_000, seed=21, bad=0.01, duplicate=0.01)
    report = produce(broker, topic, feed.batches(), malformed_every=997)
    assert report.failed == 0
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    run = subprocess.run(_ingest_cmd(topic, "questdb,clickhouse,duckdb"), env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    good = labels.filter(pl.col("_expected").is_null()).height
    bad = labels.height - good + report.malformed
    c = qdb_counts(qdb)
    assert c["n"] == c["d"] == good, c
    assert c["r"] == c["rd"] == bad, c
    for engine, e in embedded_counts(Settings(home=home), ("duckdb", "clickhouse")).items():
        assert e["n"] == e["d"] == good and e["r"] == bad, engine


class Crash(BaseException):
    """Stands for the process dying between two sinks (not a WarehouseError: no retry)."""


def test_a_batch_replayed_after_a_crash_between_sinks_is_stored_once(qdb, home: Path, broker: str, topic: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """QuestDB is written first, DuckDB (rows + offsets) last: a crash between them leaves the
    batch in QuestDB and nothing committed. The next run reads the batch again and writes it to
    QuestDB a second time; DEDUP UPSERT KEYS make that second write replace, not add."""
    from warehouse.ingest.consumer import Ingestor
    from warehouse.ingest.kafka import committed_offsets
    from warehouse.sinks import DuckDBSink, open_sinks

    migrated(qdb)
    feed, labels = labelled_feed(12_000, seed=17, bad=0.01)
    produce(broker, topic, feed.batches())
    good = labels.filter(pl.col("_expected").is_null()).height
    settings = Settings(home=home)
    real = DuckDBSink.write

    def crash(self, batch, position=None):
        raise Crash

    def run() -> dict[str, int]:
        sinks = open_sinks(["questdb", "duckdb"], settings)
        try:
            ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=f"g-{topic}", batch_rows=4_000,
                           batch_seconds=0.5, stop_when_idle=2.0)  # fmt: skip
            return ing.run().stored
        finally:
            for s in sinks:
                s.close()

    monkeypatch.setattr(DuckDBSink, "write", crash)
    with pytest.raises(Crash):
        run()
    first = qdb_counts(qdb)
    assert 0 < first["n"] == first["d"] < good  # the interrupted batch is in QuestDB …
    assert committed_offsets(broker, topic, f"g-{topic}") == {}  # … and nothing was committed
    monkeypatch.setattr(DuckDBSink, "write", real)
    stored = run()
    assert stored["questdb"] == stored["duckdb"] == good  # the replay sent that batch to QuestDB again
    c = qdb_counts(qdb)
    assert c["n"] == c["d"] == good and c["r"] == c["rd"] == labels.height - good, c
    assert embedded_counts(settings, ("duckdb",))["duckdb"]["n"] == good


@pytest.mark.slow
def test_sigkill_five_times_with_questdb_loses_and_doubles_nothing(qdb, home: Path, broker: str, topic: str) -> None:
    migrated(qdb)
    feed, labels = labelled_feed(40_000, seed=33, bad=0.01, duplicate=0.01)
    report = produce(broker, topic, feed.batches())
    assert report.failed == 0
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    cmd = _ingest_cmd(topic, "questdb,clickhouse,duckdb", "--instance-id", "qdb-crash")
    rng = random.Random(33)
    killed = 0
    for _ in range(5):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill while batches flow (after the first one is stored)
            line = proc.stderr.readline()
            if not line or line.startswith("batch "):
                break
        if proc.poll() is None:
            time.sleep(rng.uniform(0.0, 1.2))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
        proc.wait()
    assert killed >= 3, f"only {killed} of 5 kills hit a working consumer"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    good = labels.filter(pl.col("_expected").is_null()).height
    rejected = labels.height - good
    c = qdb_counts(qdb)
    assert c["n"] == c["d"] == good == report.produced - rejected, c
    assert c["r"] == c["rd"] == rejected, c
    for engine, e in embedded_counts(Settings(home=home), ("duckdb", "clickhouse")).items():
        assert e["n"] == e["d"] == good and e["r"] == rejected, engine
    keys = row_keys(Settings(home=home), qdb)
    assert len(keys["questdb"]) == good and keys["questdb"] == keys["duckdb"] == keys["clickhouse"]


@pytest.mark.slow  # ~21 s: a resilience run like the kill -9 one above (the default suite stays near 4 minutes)
def test_questdb_stopped_mid_ingest_and_restarted_loses_nothing(home: Path, tmp_path: Path, broker: str, topic: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A QuestDB of our own is stopped after the first stored batch: the consumer pauses and
    retries with backoff (offsets frozen: nothing committed while it is down), QuestDB comes back
    on the same ports and data directory, and every row arrives once (~35 s: two server starts)."""
    from warehouse.ingest.consumer import Ingestor
    from warehouse.ingest.kafka import committed_offsets
    from warehouse.servers.process import ToolMissing
    from warehouse.servers.questdb import LocalQuestDBServer
    from warehouse.sinks import open_sinks
    from warehouse.sql.engines import QuestDBEngine

    srv = LocalQuestDBServer(tmp_path / "questdb")
    try:
        srv.fetch()
        srv.start(timeout=120)
    except ToolMissing as exc:
        unavailable(f"no QuestDB: {exc}")
    try:
        # the client's own retry budget short, so the consumer's backoff is what the test sees
        monkeypatch.setenv("QDB_CLIENT_CONF", srv.client_conf + "retry_timeout=500;request_timeout=2000;")
        with QuestDBEngine() as engine:
            migrated(engine)
        feed, labels = labelled_feed(30_000, seed=12, bad=0.01)
        report = produce(broker, topic, feed.batches())
        assert report.failed == 0
        settings = Settings(home=home)
        sinks = open_sinks(["questdb", "duckdb"], settings)
        events: dict[str, object] = {"retries": [], "committed": []}
        stopped = threading.Event()

        def on_batch(stats) -> None:
            if stats.batches == 1 and not stopped.is_set():
                stopped.set()
                srv.stop()

        def on_retry(sink, attempt, delay, exc) -> None:
            events["retries"].append((sink, str(exc)))  # type: ignore[union-attr]
            events["committed"].append(sum(committed_offsets(broker, topic, f"g-{topic}").values()))  # type: ignore[union-attr]

        ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=f"g-{topic}", batch_rows=3_000, batch_seconds=0.5,
                       stop_when_idle=3.0, retry_base=0.2, retry_max=1.0, on_batch=on_batch, on_retry=on_retry)  # fmt: skip
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.append(ing.run()), daemon=True)
        worker.start()
        assert stopped.wait(120)
        deadline = time.monotonic() + 60
        while len(events["retries"]) < 3 and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.1)
        retries: list = events["retries"]  # type: ignore[assignment]
        assert len(retries) >= 3 and {s for s, _ in retries} == {"questdb"}, retries
        # same root (same data), same ports named explicitly: right after the stop, the HTTP port
        # can still be in TIME_WAIT, and `stable_ports` would then pick a new one
        srv = LocalQuestDBServer(tmp_path / "questdb", **{f"{k}_port": v for k, v in srv.ports.items()})
        srv.launch()
        srv.wait_ready(120)
        worker.join(300)
        assert done, "the consumer did not finish after QuestDB came back"
        for s in sinks:
            s.close()
        committed: list[int] = events["committed"]  # type: ignore[assignment]
        assert len(set(committed)) == 1 and 0 < committed[0] < labels.height  # frozen during the outage
        good = labels.filter(pl.col("_expected").is_null()).height
        with QuestDBEngine() as engine:
            c = qdb_counts(engine)
        assert c["n"] == c["d"] == good, c
        assert c["r"] == c["rd"] == labels.height - good, c
        assert embedded_counts(settings, ("duckdb",))["duckdb"]["n"] == good
        assert sum(committed_offsets(broker, topic, f"g-{topic}").values()) == labels.height
    finally:
        srv.stop()


# -- QuestDB analytics (queries/questdb/) ---------------------------------------------------------


def test_questdb_queries_agree_with_the_warehouse_engines(qdb, home: Path) -> None:
    """queries/questdb/bars.sql (SAMPLE BY) gives queries/bars.sql's bars (DuckDB) on the same
    rows; latest_quotes (LATEST ON) gives each instrument's newest quote; `wh query … --engine
    questdb` runs them and refuses the ClickHouse-dialect files."""
    from typer.testing import CliRunner

    from warehouse import analytics
    from warehouse.cli.main import app
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.pipeline import BatchStep
    from warehouse.sinks import open_sinks
    from warehouse.sql.engines import DuckDBEngine

    migrated(qdb)
    settings = Settings(home=home)
    feed = SyntheticFeed(instruments=8, ticks=40_000, seed=9)
    step = BatchStep(feed.source)
    sinks = open_sinks(["questdb", "duckdb"], settings)
    try:
        for b in feed.batches():
            wb = step([b]).batch
            for s in sinks:
                s.write(wb)
    finally:
        for s in sinks:
            s.close()
    qdb.wait_applied()
    duck = DuckDBEngine(settings.duckdb_path, read_only=True)
    try:
        symbols = sorted(set(duck.query("SELECT DISTINCT symbol FROM wh.trades").column("symbol").to_pylist()))[:3]
        for symbol in symbols:
            for interval in (60, 900, 86_400):
                want = pl.from_arrow(analytics.run(duck, "bars", symbol=symbol, interval=interval, limit=100_000))
                got = pl.from_arrow(analytics.run(qdb, "bars", symbol=symbol, interval=interval, limit=100_000))
                assert isinstance(want, pl.DataFrame) and isinstance(got, pl.DataFrame)
                assert want.height == got.height > 0, (symbol, interval)
                exact = ["symbol", "open", "high", "low", "close"]
                assert got.select(exact).equals(want.select(exact)), (symbol, interval)
                assert (got["bar_start"].dt.epoch("ns") == want["bar_start"].dt.epoch("ns")).all()
                assert (got["trades"].cast(pl.Int64) == want["trades"].cast(pl.Int64)).all()
                for col in ("volume", "vwap"):
                    assert ((got[col] - want[col]).abs() <= 1e-9 * want[col].abs()).all(), (symbol, interval, col)
        ticks = pl.from_arrow(duck.query("SELECT * FROM wh.market_ticks"))
    finally:
        duck.close()
    assert isinstance(ticks, pl.DataFrame)
    newest = ticks.sort("timestamp").group_by("exchange", "symbol").last().sort("exchange", "symbol")
    got = pl.from_arrow(analytics.run(qdb, "latest_quotes"))
    assert isinstance(got, pl.DataFrame)
    cols = ["exchange", "symbol", "bid", "ask", "seq"]
    assert got.select(cols).equals(newest.select(cols))
    assert (got["timestamp"].dt.epoch("ns") == newest["timestamp"].dt.epoch("ns")).all()

    runner = CliRunner()
    r = runner.invoke(app, ["query", "latest_quotes", "--engine", "questdb", "--format", "csv"])
    assert r.exit_code == 0 and r.output.startswith('"timestamp","exchange","symbol",'), r.output
    assert len(r.output.strip().splitlines()) == newest.height + 1
    r = runner.invoke(
        app, ["query", "bars", symbols[0], "--engine", "questdb", "--interval", "3600", "--format", "json"]
    )
    assert r.exit_code == 0 and '"open"' in r.output, r.output
    r = runner.invoke(app, ["query", "vwap_rolling", symbols[0], "--engine", "questdb"])
    assert r.exit_code == 1 and "Error: unknown query 'vwap_rolling' on questdb" in r.output, r.output
    r = runner.invoke(app, ["query", "latest_quotes"])
    assert r.exit_code == 1 and "Error: unknown query 'latest_quotes'" in r.output, r.output


def test_questdb_zscore_matches_the_exact_reference_and_the_other_engines(qdb, home: Path, tardis) -> None:
    """queries/questdb/zscore.sql on the real BTCUSDT day: every row's mean and std against the
    exact two-pass reference (the bar of the other engines), NULL z exactly on the flat windows,
    z within 1e-8; `wh query zscore BTCUSDT --engine questdb` gives DuckDB's and ClickHouse's
    rows; other windows (1, 7, 1,000) and a short limit agree with DuckDB too."""
    import json

    import numpy as np
    from typer.testing import CliRunner

    from warehouse.cli.main import app

    migrated(qdb)
    quotes, _ = tardis
    runner = CliRunner()

    def wh(*args: str) -> str:
        r = runner.invoke(app, list(args))
        assert r.exit_code == 0, (r.output, r.exception)
        return r.output

    for engine in ("questdb", "all"):
        wh("import", str(quotes), "--engine", engine)
    qdb.wait_applied()
    csv = pl.read_csv(quotes).sort(["timestamp", "local_timestamp"], maintain_order=True)
    bids = csv["bid_price"].to_numpy()
    mean, std, flat = zscore_reference(bids)
    assert flat.sum() > 90
    rows = pl.DataFrame(json.loads(wh("query", "zscore", "BTCUSDT", "--engine", "questdb", "--limit", "0",
                                      "--format", "json"))).reverse()  # fmt: skip
    assert rows.height == 9_999
    got_mean, got_std, z = rows["rolling_mean"].to_numpy(), rows["rolling_std"].to_numpy(), rows["z_score"]
    assert np.max(np.abs(got_mean - mean) / mean) < 1e-9
    nz = ~flat
    assert np.max(np.abs(got_std[nz] - std[nz]) / std[nz]) < 1e-9
    assert np.all(got_std[flat] == 0.0)
    assert z.is_null().to_numpy().tolist() == flat.tolist()
    assert np.max(np.abs(z.to_numpy()[nz] - (bids[nz] - mean[nz]) / std[nz])) < 1e-8

    def frame(engine: str, *extra: str) -> pl.DataFrame:
        return pl.read_csv(wh("query", "zscore", "BTCUSDT", "--engine", engine, "--format", "csv", *extra).encode())

    for extra in ((), ("--window", "1"), ("--window", "7", "--limit", "3"), ("--window", "1000", "--limit", "250")):
        want = frame("duckdb", *extra)
        assert want.height == int(dict(zip(extra[::2], extra[1::2], strict=True)).get("--limit", 100))
        for engine in ("clickhouse", "questdb"):
            got = frame(engine, *extra)
            assert got.columns == want.columns and got.height == want.height, (engine, extra)
            assert got["timestamp"].to_list() == want["timestamp"].to_list()
            assert got["z_score"].is_null().to_list() == want["z_score"].is_null().to_list(), (engine, extra)
            for col in ("bid", "rolling_mean", "rolling_std"):
                np.testing.assert_allclose(got[col].to_numpy().astype(float), want[col].to_numpy().astype(float),
                                           rtol=1e-9, err_msg=f"{engine} {extra} {col}")  # fmt: skip
            zg, zw = got["z_score"].drop_nulls().to_numpy(), want["z_score"].drop_nulls().to_numpy()
            assert np.max(np.abs(zg - zw), initial=0.0) < 1e-8, (engine, extra)
    r = runner.invoke(app, ["query", "zscore", "NOPE", "--engine", "questdb"])
    assert (
        r.exit_code == 1 and "Error: unknown symbol 'NOPE' (no quotes on questdb); known symbols: BTCUSDT" in r.output
    )
    r = runner.invoke(app, ["query", "zscore", "BTC' OR '1'='1", "--engine", "questdb"])
    assert r.exit_code == 1 and "unknown symbol" in r.output, r.output


def test_wh_sql_on_questdb_runs_as_a_user_that_cannot_write(qdb, questdb, home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`wh sql --engine questdb`: QuestDB's SQL (SAMPLE BY, LATEST ON) runs as the read-only PG
    user; the token check refuses other tables and functions; past it, QuestDB itself refuses
    every write (barrier 2, reached directly); limits on rows and time hold."""
    from typer.testing import CliRunner

    from warehouse.cli.main import app
    from warehouse.errors import RefusedSQLError
    from warehouse.sql import readonly_questdb

    for k, v in questdb.reader_env().items():
        monkeypatch.setenv(k, v)
    migrated(qdb)
    runner = CliRunner()
    feed = SyntheticFeed(instruments=4, ticks=4_000, seed=3)
    from warehouse.pipeline import BatchStep
    from warehouse.sinks import open_sinks

    step = BatchStep(feed.source)
    (sink,) = open_sinks(["questdb"], Settings(home=home))
    try:
        for b in feed.batches():
            sink.write(step([b]).batch)
    finally:
        sink.close()
    qdb.wait_applied()
    quotes = int(qdb.query("SELECT count() FROM wh.market_ticks").column(0)[0].as_py())

    def sql(*args: str) -> tuple[int, str]:
        r = runner.invoke(app, ["sql", "--engine", "questdb", *args])
        return r.exit_code, r.output

    code, out = sql("SELECT count() n FROM wh.market_ticks", "--format", "csv")
    assert code == 0 and out.splitlines() == ['"n"', str(quotes)], out
    code, out = sql("SELECT symbol, last(bid) FROM wh_market_ticks SAMPLE BY 1h", "--format", "json")
    assert code == 0 and '"symbol"' in out, out
    code, out = sql("SELECT symbol, bid FROM wh.market_ticks LATEST ON timestamp PARTITION BY symbol", "--format",
                    "csv")  # fmt: skip
    assert code == 0 and len(out.strip().splitlines()) == 5, out
    for statement, message in [
        ("SELECT * FROM wh_schema_migrations", "table wh_schema_migrations is not one wh sql may read"),
        ("SELECT * FROM tables()", "function tables() is not allowed"),
        ("SELECT * FROM read_parquet('x.parquet')", "function read_parquet() is not allowed"),
        ("DROP TABLE wh_trades", "only a query"),
        ("SELECT 1; DROP TABLE wh_trades", "one statement only"),
    ]:
        code, out = sql(statement)
        assert code == 1 and f"Error: {message}" in out, (statement, out)
    for statement in ["DROP TABLE wh_trades", "INSERT INTO wh_market_ticks (timestamp, bid) VALUES (now(), 1.0)",
                      "UPDATE wh_market_ticks SET bid = 0", "CREATE TABLE wh_probe (x INT)", "TRUNCATE TABLE wh_trades",
                      "ALTER TABLE wh_trades ADD COLUMN probe INT", "SNAPSHOT PREPARE"]:  # fmt: skip
        with pytest.raises(RefusedSQLError, match=r"refused by QuestDB's read-only user: .*[Pp]ermission denied"):
            readonly_questdb.execute(statement, max_rows=10, timeout=30)
    qdb.wait_applied()
    assert int(qdb.query("SELECT count() FROM wh.market_ticks").column(0)[0].as_py()) == quotes
    assert set(qdb.tables()) >= {"wh.trades", "wh.market_ticks", "wh.rejects"}
    assert qdb.query("SELECT count() FROM tables() WHERE table_name = 'wh_probe'").column(0)[0].as_py() == 0

    code, out = sql("SELECT * FROM wh.market_ticks", "--max-rows", "10")
    assert code == 1 and "more than 10 rows" in out, out
    t = time.monotonic()
    code, out = sql("SELECT count() FROM wh_market_ticks a CROSS JOIN wh_market_ticks b CROSS JOIN wh_market_ticks c "
                    "WHERE a.bid + b.bid > c.bid * 2", "--timeout", "1")  # fmt: skip
    assert code == 1 and "ran longer than 1 s" in out and time.monotonic() - t < 15, out
    monkeypatch.setenv("WH_QUESTDB_READER_PASSWORD", "not-the-password")
    code, out = sql("SELECT 1")
    assert code == 1 and "Error: cannot connect to QuestDB's PG wire" in out and "not-the-password" not in out, out
    monkeypatch.delenv("WH_QUESTDB_READER_PASSWORD")
    code, out = sql("SELECT 1")
    assert code == 1 and "set WH_QUESTDB_READER_PASSWORD" in out, out


def test_a_table_dropped_and_re_created_under_a_running_sink_loses_nothing(qdb) -> None:
    """questdb/questdb#5803 (open in 9.3.4): a sender that wrote a table before it was dropped
    and re-created loses its next transaction to it without an error (measured: 150,000 of
    200,000 rows). The engine notices the new table id and writes through a new sender."""
    from warehouse.bench.questdb import quotes
    from warehouse.sql.engines import QuestDBEngine
    from warehouse.sql.migrate import migrate

    data = quotes(40_000)
    chunks = [data.slice(i, 10_000) for i in range(0, data.num_rows, 10_000)]
    writer = QuestDBEngine()
    try:
        for _ in range(2):
            reset(qdb)
            migrate(qdb)
            for c in chunks:
                writer.insert("wh.market_ticks", c)
            qdb.wait_applied()
            assert int(qdb.query("SELECT count() FROM wh.market_ticks").column(0)[0].as_py()) == 40_000
    finally:
        writer.close()
