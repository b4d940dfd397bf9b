"""The server code path (WH_CLICKHOUSE_URL) against a real ClickHouse server over HTTP.

The server is the chdb wheel's engine listening on loopback (warehouse/sql/chserver.py),
so this runs offline; set WH_TEST_CLICKHOUSE_URL to run it against another server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from warehouse.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
runner = CliRunner()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory):
    external = os.environ.get("WH_TEST_CLICKHOUSE_URL")
    if external:
        yield external
        return
    from warehouse.sql.chserver import LocalClickHouseServer

    with LocalClickHouseServer(tmp_path_factory.mktemp("chserver")) as srv:
        yield srv.url


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
