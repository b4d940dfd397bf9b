"""Real QuestDB and Apache Kafka servers (warehouse/servers, `wh servers`): smoke tests.

Servers come from the environment (QDB_CLIENT_CONF / WH_TEST_QUESTDB_HTTP,
WH_TEST_KAFKA_BOOTSTRAP) or are started here from their pinned Maven Central jars; see
tests/integration/servers.py for when they skip (never under CI).
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from servers import kafka_fixture, questdb_fixture, require_server_tools

pytestmark = [pytest.mark.integration]

questdb = questdb_fixture()
kafka = kafka_fixture()
WH = [sys.executable, "-m", "warehouse.cli.main"]
T0 = 1_790_000_000_123_456_789  # ns; the digits below the microsecond must survive


# QuestDB ----------------------------------------------------------------------------------


@pytest.mark.questdb
def test_questdb_wal_dedup_table_over_ilp_http(questdb) -> None:
    from questdb import QuestDBError, Sender, TimestampNanos

    table = f"quotes_{uuid.uuid4().hex[:8]}"
    questdb.exec(
        f"CREATE TABLE {table} (exchange SYMBOL, symbol SYMBOL, bid DOUBLE, ask DOUBLE, seq LONG, "
        "ts_event TIMESTAMP_NS) TIMESTAMP(ts_event) PARTITION BY DAY WAL "
        "DEDUP UPSERT KEYS(ts_event, exchange, symbol, seq)"
    )
    cols = {c[0]: c[1] for c in questdb.exec(f"SELECT \"column\", type FROM table_columns('{table}')")["dataset"]}
    assert cols["ts_event"] == "TIMESTAMP_NS", cols

    def send(rows: list[tuple[int, float]]) -> None:
        with Sender.from_conf(questdb.client_conf + "auto_flush=off;") as sender:
            for seq, bid in rows:
                sender.row(table, symbols={"exchange": "binance", "symbol": "BTCUSDT"},
                           columns={"bid": bid, "ask": bid + 0.5, "seq": seq}, at=TimestampNanos(T0 + seq))  # fmt: skip
            sender.flush()  # one HTTP request, one table: one transaction

    send([(i, 100.0 + i) for i in range(100)])
    questdb.poll(f"SELECT count() FROM {table}", lambda rows: rows == [[100]])
    first = questdb.exec(f"SELECT ts_event, bid FROM {table} WHERE seq = 7")["dataset"]
    assert first == [["2026-09-21T14:13:20.123456796Z", 107.0]], first  # T0 + 7 ns, to the nanosecond

    # re-sent rows (same dedup key) replace instead of adding; seq 100 is new and marks the commit applied
    send([(7, 107.0), (8, 999.0), (100, 200.0)])
    questdb.poll(f"SELECT count() FROM {table}", lambda rows: rows == [[101]])
    assert questdb.exec(f"SELECT count() FROM {table} WHERE seq IN (7, 8)")["dataset"] == [[2]]
    assert questdb.exec(f"SELECT bid FROM {table} WHERE seq = 8")["dataset"] == [[999.0]]  # UPSERT: last wins

    # ILP over HTTP reports a bad row (over TCP the server would only close the socket)
    with pytest.raises(QuestDBError), Sender.from_conf(questdb.client_conf + "auto_flush=off;") as sender:
        sender.row(table, symbols={"exchange": "x", "symbol": "y"}, columns={"bid": "not a number"},
                   at=TimestampNanos(T0))  # fmt: skip
        sender.flush()
    assert questdb.exec(f"SELECT count() FROM {table}")["dataset"] == [[101]]


# Kafka ------------------------------------------------------------------------------------


def _consume(consumer, want: int, timeout: float = 60.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=1.0):
            assert msg.error() is None, msg.error()
            got.append(msg)
        if got:
            consumer.commit(asynchronous=False)  # after processing: manual commits only
    return got


@pytest.mark.kafka
def test_kafka_topic_produce_consume_group_static_membership(kafka: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"ticks-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=1)]).values():
        fut.result(timeout=30)  # a real broker creates topics (the mock's CreateTopics times out)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 12

    errors: list = []
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "linger.ms": 5})
    for i in range(1_000):
        producer.produce(topic, key=f"SYM{i % 37}", value=str(i).encode(),
                         on_delivery=lambda err, msg: errors.append(err) if err else None)  # fmt: skip
        producer.poll(0)
    assert producer.flush(30) == 0 and not errors, errors

    group = f"g-{topic}"
    conf = {"bootstrap.servers": kafka, "group.id": group, "group.instance.id": "wh-test-1",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 30_000}  # fmt: skip
    c1 = Consumer(conf)
    c1.subscribe([topic])
    got = _consume(c1, 1_000)
    assert sorted(int(m.value()) for m in got) == list(range(1_000))
    assert len({m.partition() for m in got}) > 1
    committed = c1.committed([TopicPartition(topic, p) for p in range(12)], timeout=10)
    assert sum(tp.offset for tp in committed if tp.offset > 0) == 1_000
    c1.close()  # a static member does not leave the group on close

    for i in range(1_000, 1_010):
        producer.produce(topic, key=f"SYM{i % 37}", value=str(i).encode())
    assert producer.flush(30) == 0

    # the same group.instance.id rejoins at once (no session-timeout wait), resumes at the commits
    t = time.monotonic()
    c2 = Consumer(conf)
    c2.subscribe([topic])
    again = _consume(c2, 10, timeout=25)
    rejoin = time.monotonic() - t
    assert sorted(int(m.value()) for m in again) == list(range(1_000, 1_010)), [m.value() for m in again]
    assert len(c2.assignment()) == 12
    assert rejoin < 20, rejoin  # well under session.timeout.ms
    c2.close()


# wh servers -------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    """Nothing listens there any more (a closed connection's TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.questdb
@pytest.mark.kafka
def test_wh_servers_prints_env_lines_and_stops_on_sigterm(tmp_path: Path) -> None:
    from warehouse.servers.kafka import broker_answers

    require_server_tools()
    env_file = tmp_path / "servers.env"
    env = {k: v for k, v in os.environ.items() if k != "QDB_CLIENT_CONF"}
    env["WH_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen([*WH, "servers", "--data", str(tmp_path / "data"), "--env-file", str(env_file)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True).start()
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) == 6:
                done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert done.wait(180), (lines, "".join(stderr))
        # the read-only user's password goes to the 0600 file only: stdout says where it is
        assert lines[-1] == f"# WH_QUESTDB_READER_PASSWORD: in {env_file} (mode 0600)", lines
        values = {k: shlex.split(v)[0] for k, v in (line.split("=", 1) for line in lines[:-1])}
        assert set(values) == {"QDB_CLIENT_CONF", "WH_QUESTDB_HTTP", "WH_QUESTDB_PG", "WH_QUESTDB_READER_USER",
                               "WH_KAFKA_BOOTSTRAP"}  # fmt: skip
        http_port = int(values["WH_QUESTDB_HTTP"].rsplit(":", 1)[1])
        assert values["QDB_CLIENT_CONF"] == f"http::addr=127.0.0.1:{http_port};"
        assert lines[0] == f"QDB_CLIENT_CONF='http::addr=127.0.0.1:{http_port};'"  # a shell keeps the ';'
        sourced = subprocess.run(["sh", "-c", f'set -a; . "{env_file}"; echo "$QDB_CLIENT_CONF"'],
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        assert sourced == values["QDB_CLIENT_CONF"]
        in_file = env_file.read_text().splitlines()
        assert in_file[:-1] == lines[:-1] and in_file[-1].startswith("WH_QUESTDB_READER_PASSWORD=")
        password = shlex.split(in_file[-1].split("=", 1)[1])[0]
        assert len(password) >= 24 and password not in "".join(stderr)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

        from servers import QuestDB

        assert QuestDB(values["WH_QUESTDB_HTTP"]).exec("SELECT 1")["dataset"] == [[1]]
        assert broker_answers(values["WH_KAFKA_BOOTSTRAP"], timeout=10)
        import psycopg

        host, port = values["WH_QUESTDB_PG"].rsplit(":", 1)
        with psycopg.connect(host=host, port=int(port), user=values["WH_QUESTDB_READER_USER"], password=password,
                             dbname="qdb", autocommit=True) as pg:  # fmt: skip
            assert pg.execute("SELECT 1").fetchall() == [(1,)]
            with pytest.raises(psycopg.Error, match="permission denied"):
                pg.execute("CREATE TABLE wh_probe (x INT)")
        with pytest.raises(psycopg.OperationalError):  # the admin's default password is not the one
            psycopg.connect(host=host, port=int(port), user="admin", password="quest", dbname="qdb", connect_timeout=5)
        ports = [http_port, int(values["WH_QUESTDB_PG"].rsplit(":", 1)[1]),
                 int(values["WH_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])]  # fmt: skip

        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(stderr)
        print(f"\n[servers] wh servers stopped {time.monotonic() - t:.1f} s after SIGTERM", file=sys.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(_port_free(p) for p in ports), ports
    assert not env_file.exists()
