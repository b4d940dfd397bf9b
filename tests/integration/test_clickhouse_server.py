"""The server code path (WH_CLICKHOUSE_URL) against a real ClickHouse server over HTTP.

The server is the chdb wheel's engine listening on loopback (warehouse/sql/chserver.py),
so this runs offline; set WH_TEST_CLICKHOUSE_URL to run it against another server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import server_fixture
from typer.testing import CliRunner

from warehouse.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
runner = CliRunner()


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory):
    from warehouse.sql.chserver import LocalClickHouseServer

    with LocalClickHouseServer(tmp_path_factory.mktemp("chserver")) as srv:
        yield srv


@contextmanager
def _local_writer_url(folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's local server (the `local_server` fixture), as its writer: it refuses anonymous users."""
    yield str(request.getfixturevalue("local_server").dsn().get_secret_value())


# WH_TEST_CLICKHOUSE_URL, else the local server
server_url = server_fixture("server_url", from_env=lambda: os.environ.get("WH_TEST_CLICKHOUSE_URL") or None,
                            start=_local_writer_url)  # fmt: skip


def test_import_and_zscore_over_http_match_duckdb(home: Path, tardis, server_url: str, monkeypatch) -> None:
    import clickhouse_connect

    admin = clickhouse_connect.get_client(dsn=server_url)
    admin.command("DROP DATABASE IF EXISTS wh")
    monkeypatch.setenv("WH_CLICKHOUSE_URL", server_url)
    quotes, trades = tardis
    for _ in range(2):
        r = runner.invoke(app, ["import", str(quotes), str(trades)])
        assert r.exit_code == 0, r.output
    assert admin.query("SELECT count() FROM wh.market_ticks").result_rows == [(9_999,)]
    assert admin.query("SELECT count() FROM wh.trades").result_rows == [(9_999,)]
    out = {}
    for engine in ("duckdb", "clickhouse"):
        r = runner.invoke(app, ["query", "zscore", "BTCUSDT", "--engine", engine, "--format", "csv"])
        assert r.exit_code == 0, r.output
        out[engine] = r.output.splitlines()
    assert len(out["clickhouse"]) == 101
    d = [line.split(",") for line in out["duckdb"][1:]]
    c = [line.split(",") for line in out["clickhouse"][1:]]
    assert [row[:3] for row in d] == [row[:3] for row in c]
    for a, b in zip(d, c, strict=True):
        for x, y in zip(a[3:], b[3:], strict=True):
            assert (x == y == "") or abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(x)))
    admin.close()


# -- access control of the local server (`wh ingest` serves it; warehouse/sql/chserver.py) --


def _http(url: str, headers: dict[str, str] | None = None) -> int:
    """HTTP status of a GET (the body is not needed)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_local_server_refuses_anonymous_users(local_server) -> None:
    import base64

    q = f"{local_server.url}/?query=SELECT%201"
    assert _http(f"{local_server.url}/ping") == 200  # liveness stays open
    assert _http(q) in (401, 403)
    assert _http(q + "&user=default") in (401, 403)
    assert _http(q, {"Authorization": "Basic " + base64.b64encode(b"default:").decode()}) in (401, 403)
    assert _http(q, {"X-ClickHouse-User": "wh_reader", "X-ClickHouse-Key": "wrong"}) in (401, 403)
    reader = local_server.credentials.reader.get_secret_value()
    assert _http(q, {"X-ClickHouse-User": "wh_reader", "X-ClickHouse-Key": reader}) == 200


def _refused(client, sql: str) -> str:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    with pytest.raises(ClickHouseError) as info:
        client.command(sql)
    return str(info.value)


def test_local_server_reader_reads_writer_writes_nobody_reads_files(local_server) -> None:
    """Measured with clickhouse-connect over HTTP from this process (the server is another)."""
    import clickhouse_connect

    writer = clickhouse_connect.get_client(dsn=local_server.dsn().get_secret_value())
    reader = clickhouse_connect.get_client(dsn=local_server.dsn(read_only=True).get_secret_value())
    try:
        assert writer.command("SELECT currentUser()") == "wh_writer"
        assert reader.command("SELECT currentUser()") == "wh_reader"
        writer.command("CREATE DATABASE IF NOT EXISTS wh")
        writer.command("DROP TABLE IF EXISTS wh.access_probe")
        writer.command("CREATE TABLE wh.access_probe (x Int32) ENGINE = MergeTree ORDER BY x")
        writer.command("INSERT INTO wh.access_probe VALUES (1), (2)")
        assert reader.command("SELECT count() FROM wh.access_probe") == 2
        for sql in ("INSERT INTO wh.access_probe VALUES (3)",
                    "CREATE TABLE wh.reader_table (x Int32) ENGINE = MergeTree ORDER BY x",
                    "DROP TABLE wh.access_probe", "TRUNCATE TABLE wh.access_probe",
                    "ALTER TABLE wh.access_probe DELETE WHERE 1", "CREATE DATABASE reader_db"):  # fmt: skip
            _refused(reader, sql)
        assert reader.command("SELECT count() FROM wh.access_probe") == 2
        # the writer's rights end at the wh database
        _refused(writer, "CREATE TABLE default.outside (x Int32) ENGINE = MergeTree ORDER BY x")
        _refused(writer, "CREATE DATABASE outside")
        # no table function reaches outside the warehouse, for either user
        outside = ["SELECT * FROM file('/etc/passwd', 'LineAsString')",
                   "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString', 'x String')",
                   "SELECT * FROM remote('127.0.0.1', system.one)",
                   "SELECT * FROM s3('http://127.0.0.1:9/bucket/k.csv', 'CSV', 'x String')",
                   "SELECT * FROM executable('id', 'TSV', 'x String')",
                   "SELECT * FROM python('sys')",  # chdb's: crashed the server before it was switched off
                   "SELECT * FROM python('sys') SETTINGS allow_python_table_function = 1",
                   "INSERT INTO FUNCTION file('/tmp/wh_access_probe.csv', 'CSV', 'x Int32') VALUES (1)"]  # fmt: skip
        for client in (reader, writer):
            for sql in outside:
                msg = _refused(client, sql)
                assert any(code in msg for code in ("ACCESS_DENIED", "FUNCTION_NOT_ALLOWED", "QUERY_IS_PROHIBITED",
                                                    "READONLY")), (sql, msg)  # fmt: skip
        assert _http(f"{local_server.url}/ping") == 200  # still up
        writer.command("DROP TABLE wh.access_probe")
    finally:
        reader.close()
        writer.close()


def test_engines_use_the_reader_or_writer_from_the_secret_file(local_server, tmp_path: Path, monkeypatch) -> None:
    """What `wh query` / `wh status` (read-only engines) and the sinks do while `wh ingest`
    serves: the URL file holds no password, the secret file (0600) holds both."""
    from warehouse.config import Settings
    from warehouse.errors import QueryError
    from warehouse.sql.chserver import write_secret
    from warehouse.sql.engines import ClickHouseEngine

    for var in ("WH_CLICKHOUSE_URL", "WH_CLICKHOUSE_HOST"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(home=tmp_path / "wh", lock_wait_seconds=0)
    settings.home.mkdir()
    write_secret(settings.clickhouse_secret_file, local_server.credentials)
    settings.clickhouse_server_file.write_text(local_server.url + "\n")
    assert "@" not in settings.clickhouse_server_file.read_text()
    for read_only, user in ((True, "wh_reader"), (False, "wh_writer")):
        eng = ClickHouseEngine(settings, read_only=read_only)
        try:
            assert eng.is_server and eng.query("SELECT currentUser() AS u").to_pylist() == [{"u": user}]
            for secret in (local_server.credentials.writer, local_server.credentials.reader):
                assert secret.get_secret_value() not in eng.where
            if read_only:
                with pytest.raises(QueryError, match=r"ACCESS_DENIED|READONLY"):
                    eng.query("CREATE DATABASE IF NOT EXISTS reader_db")
        finally:
            eng.close()
    # `wh sql` goes through the reader too, with its own limits in the SETTINGS clause
    from warehouse.sql import readonly

    # (currentUser() is not on wh sql's allowlist: the engine wh sql opens is asked directly)
    users: list[str] = []
    real_query = ClickHouseEngine.query

    def spy(self: ClickHouseEngine, sql: str, params: object = None) -> object:
        users.append(real_query(self, "SELECT currentUser() AS u").to_pylist()[0]["u"])
        return real_query(self, sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(ClickHouseEngine, "query", spy)
    table = readonly.run("SELECT 1 AS one", dialect="clickhouse", engine="clickhouse", settings=settings,
                         max_rows=10, timeout=30)  # fmt: skip
    assert table.to_pylist() == [{"one": 1}] and users == ["wh_reader"]


def test_secret_file_is_0600_from_creation(tmp_path: Path) -> None:
    from warehouse.sql.chserver import ServerCredentials, read_secret, write_secret

    creds = ServerCredentials.generate()
    path = tmp_path / "clickhouse.secret"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        write_secret(path, creds)
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_secret(path) == creds
    assert creds.writer.get_secret_value() not in repr(creds) + str(creds)
    assert [p.name for p in tmp_path.iterdir()] == ["clickhouse.secret"]  # no temporary file left
