"""Servers for the integration tests, all through one factory, `server_fixture`.

Each fixture first takes an address from the environment — QuestDB: WH_TEST_QUESTDB_HTTP
(http://host:port) or QDB_CLIENT_CONF (http::addr=host:port;); Kafka: WH_TEST_REAL_KAFKA_BOOTSTRAP;
the embedded broker: WH_TEST_KAFKA_BOOTSTRAP; ClickHouse: WH_TEST_CLICKHOUSE_URL — and otherwise
starts its own for the module (warehouse/servers: jars from Maven Central, cached; `wh broker`;
the chdb wheel's server). Without Java or Maven the tests skip with that reason, except under CI
(`CI` set), where a server that is not there is a failure: CI must never pass by skipping.

    questdb = questdb_fixture()     # in a test module: a module-scoped fixture named `questdb`
    kafka = kafka_fixture()
    broker = server_fixture("broker", from_env=…, start=…)    # tests/integration/conftest.py
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

A = TypeVar("A")  # a server's address as the tests use it


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip outside CI; under CI a missing server fails the run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def _report(name: str, srv: Any) -> None:
    jars = srv.jars
    fetched = (
        f"jars {jars.size_bytes / 1e6:.1f} MB {'downloaded' if jars.downloaded else 'cached'} in {jars.seconds:.1f} s"
    )
    rss = (srv.rss_bytes() or 0) / 2**20
    print(f"\n[servers] {name}: {fetched}; answered {srv.startup_seconds:.1f} s after start; RSS {rss:.0f} MiB",
          file=sys.stderr)  # fmt: skip


@dataclass(frozen=True)
class QuestDB:
    http_url: str  # http://127.0.0.1:PORT — /exec and ILP over HTTP
    pg: str | None = None  # HOST:PORT of PG wire, where `wh sql --engine questdb` runs
    reader_password: str | None = None  # of its read-only user (wh servers: wh_reader)

    def reader_env(self) -> dict[str, str]:
        """WH_QUESTDB_PG / WH_QUESTDB_READER_PASSWORD, or fail (CI) / skip: no read-only user known."""
        if not self.pg or not self.reader_password:
            unavailable("QuestDB's read-only PG user is unknown: set WH_QUESTDB_PG and WH_QUESTDB_READER_PASSWORD "
                        "(from `wh servers`' env file) beside WH_TEST_QUESTDB_HTTP")  # fmt: skip
        return {"WH_QUESTDB_PG": self.pg, "WH_QUESTDB_READER_PASSWORD": self.reader_password}

    @property
    def client_conf(self) -> str:
        return f"http::addr={urllib.parse.urlsplit(self.http_url).netloc};"

    def exec(self, sql: str, timeout: float = 30.0) -> dict[str, Any]:
        from warehouse.servers.questdb import http_exec

        return http_exec(f"{self.http_url}/exec?{urllib.parse.urlencode({'query': sql})}", timeout=timeout)

    def poll(self, sql: str, until: Any, timeout: float = 30.0) -> list[list[Any]]:
        """WAL tables apply commits asynchronously: re-run `sql` until its rows satisfy `until`."""
        deadline = time.monotonic() + timeout
        rows: list[list[Any]] = []
        while time.monotonic() < deadline:
            rows = self.exec(sql)["dataset"]
            if until(rows):
                return rows
            time.sleep(0.1)
        raise AssertionError(f"not visible within {timeout} s: {sql} → {rows}")


def _questdb_from_env() -> QuestDB | None:
    url = os.environ.get("WH_TEST_QUESTDB_HTTP")
    reader = {"pg": os.environ.get("WH_QUESTDB_PG"), "reader_password": os.environ.get("WH_QUESTDB_READER_PASSWORD")}
    if url:
        return QuestDB(url.rstrip("/"), **reader)
    conf = os.environ.get("QDB_CLIENT_CONF")
    if conf:
        m = re.match(r"(https?)::(?:.*;)?addr=([^;]+)", conf)
        if m is None:
            pytest.fail(
                f"QDB_CLIENT_CONF={conf!r}: the tests need an http:: (or https::) conf with addr=", pytrace=False
            )
        return QuestDB(f"{m.group(1)}://{m.group(2)}", **reader)
    return None


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/exec?query=SELECT%201", timeout=5) as r:
            return bool(json.loads(r.read()).get("dataset") == [[1]])
    except (OSError, ValueError):
        return False


def server_fixture(
    name: str,
    *,
    from_env: Callable[[], A | None],
    start: Callable[[Path, pytest.FixtureRequest], AbstractContextManager[A]],
    answers: Callable[[A], bool] | None = None,
    show: Callable[[A], str] = str,
) -> Any:
    """The one way the tests get a server: a module-scoped fixture `name` whose value is the
    address from the environment (`from_env()`; it must answer, else the test fails — a wrong
    address is never skipped), or else a server of our own for the module: `start(folder,
    request)` is a context manager yielding the address. A missing tool (Java, Maven) skips
    with its reason, and fails under CI."""

    @pytest.fixture(scope="module", name=name)
    def fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[A]:
        from warehouse.errors import ToolMissing

        external = from_env()
        if external is not None:
            if answers is not None and not answers(external):
                pytest.fail(f"{name} from the environment does not answer at {show(external)}", pytrace=False)
            yield external
            return
        try:
            with start(tmp_path_factory.mktemp(name), request) as address:
                yield address
        except ToolMissing as exc:
            unavailable(f"no {name}: {exc}")

    return fixture


@contextmanager
def _local_questdb(folder: Path, request: pytest.FixtureRequest) -> Iterator[QuestDB]:
    from warehouse.servers.questdb import LocalQuestDBServer

    srv = LocalQuestDBServer(folder)
    srv.fetch()
    srv.start(timeout=120)
    _report("QuestDB", srv)
    try:
        yield QuestDB(srv.http_url, srv.pg_address, srv.reader_password)
    finally:
        srv.stop()


@contextmanager
def _local_kafka(folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    from warehouse.servers.kafka import LocalKafkaServer

    srv = LocalKafkaServer(folder)
    srv.fetch()
    srv.start(timeout=120)
    _report("Kafka", srv)
    try:
        yield srv.bootstrap
    finally:
        srv.stop()


def _kafka_answers(bootstrap: str) -> bool:
    from warehouse.servers.kafka import broker_answers

    return bool(broker_answers(bootstrap, timeout=10))


def questdb_fixture() -> Any:
    """QuestDB: WH_TEST_QUESTDB_HTTP or QDB_CLIENT_CONF, else started from its jar."""
    return server_fixture("questdb", from_env=_questdb_from_env, start=_local_questdb,
                          answers=lambda q: _answers_http(q.http_url), show=lambda q: q.http_url)  # fmt: skip


def real_broker() -> str | None:
    """The real Apache Kafka of the tests, when there is one (.ci/run's `wh servers`)."""
    return os.environ.get("WH_TEST_REAL_KAFKA_BOOTSTRAP") or None


def kafka_fixture() -> Any:
    """Apache Kafka (a real broker): WH_TEST_REAL_KAFKA_BOOTSTRAP, else started from its jars."""
    return server_fixture("kafka", from_env=lambda: os.environ.get("WH_TEST_REAL_KAFKA_BOOTSTRAP") or None,
                          start=_local_kafka, answers=_kafka_answers)  # fmt: skip


def require_server_tools() -> None:
    """For tests that start servers themselves (`wh servers`): the jars fetched (or cached) and
    the Javas found, else skip/fail like the fixtures."""
    from warehouse.errors import ToolMissing
    from warehouse.servers import maven
    from warehouse.servers.kafka import KAFKA_ARTIFACTS, KAFKA_MIN_JAVA, KAFKA_VERSION
    from warehouse.servers.process import find_java
    from warehouse.servers.questdb import QUESTDB_ARTIFACT, QUESTDB_MIN_JAVA, QUESTDB_VERSION

    try:
        find_java(QUESTDB_MIN_JAVA, env_var="WH_QUESTDB_JAVA_HOME", what=f"QuestDB {QUESTDB_VERSION}")
        find_java(KAFKA_MIN_JAVA, env_var="WH_KAFKA_JAVA_HOME", what=f"Kafka {KAFKA_VERSION}")
        maven.resolve([QUESTDB_ARTIFACT])
        maven.resolve(KAFKA_ARTIFACTS)
    except ToolMissing as exc:
        unavailable(str(exc))
