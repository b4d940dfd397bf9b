"""ClickHouse past one machine: two real ClickHouse servers from the chdb wheel configured as a
two-shard cluster (Distributed over shard-local MergeTree; no Keeper, so DDL and partition swaps go
node by node — WH_CLICKHOUSE_NODES). The cluster must answer exactly like one server holding the
same data: same columns, same rows once each, same analytics, same ledger after a re-run.

Not provable here: the Keeper path (ON CLUSTER, ReplicatedMergeTree) — chdb runs no Keeper; its
statements are checked as text in tests/unit/test_cluster_ddl.py."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
WH = [sys.executable, "-m", "warehouse.cli.main"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    from warehouse.sql.chserver import LocalClickHouseServer, LocalCluster, ServerCredentials, free_port

    base = tmp_path_factory.mktemp("chcluster")
    ports = (free_port(), free_port())
    cluster = LocalCluster("wh_local", ports, secrets.token_hex(16))
    credentials = ServerCredentials.generate()
    nodes = [LocalClickHouseServer(base / f"node{i}", credentials=credentials, cluster=cluster, tcp_port=p)
             for i, p in enumerate(ports)]  # fmt: skip
    single = LocalClickHouseServer(base / "single")
    started = []
    try:
        for s in (*nodes, single):
            s.start()
            started.append(s)
        yield {"nodes": nodes, "single": single, "base": base}
    finally:
        for s in started:
            s.stop()


def env_for(servers: dict, home: Path, *, cluster: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WH_CLICKHOUSE_")}
    env["WH_HOME"] = str(home)
    if cluster:
        a, b = servers["nodes"]
        env |= {"WH_CLICKHOUSE_URL": a.dsn().get_secret_value(), "WH_CLICKHOUSE_CLUSTER": "wh_local",
                "WH_CLICKHOUSE_NODES": f"127.0.0.1:{a.http_port},127.0.0.1:{b.http_port}"}  # fmt: skip
    else:
        env["WH_CLICKHOUSE_URL"] = servers["single"].dsn().get_secret_value()
    return env


def wh(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([*WH, *args], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    return r.stdout


def client(server, *, read_only: bool = False):
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=server.dsn(read_only=read_only).get_secret_value())


def rows(server, sql: str) -> list[tuple]:
    c = client(server)
    try:
        return c.query(sql).result_rows
    finally:
        c.close()


def as_json(env: dict[str, str], *args: str) -> list[dict]:
    return json.loads(wh(env, *args, "--format", "json"))


@pytest.mark.slow
def test_a_two_shard_cluster_answers_like_one_server(servers: dict, tmp_path: Path) -> None:
    a, b = servers["nodes"]
    single = servers["single"]
    feed = tmp_path / "feed"
    wh(env_for(servers, tmp_path / "gen", cluster=False), "generate", "--ticks", "60000", "--instruments", "24",
       "--seed", "5", "--bad-rate", "0.01", "--out", str(feed))  # fmt: skip
    cl, one = env_for(servers, tmp_path / "cl", cluster=True), env_for(servers, tmp_path / "one", cluster=False)

    # DDL: on every node, Distributed over shard-local MergeTree; the same columns as one server
    assert "applied 001_cluster.sql" in wh(cl, "migrate", "--engine", "clickhouse", "--cluster", "wh_local")
    assert "up to date" in wh(cl, "migrate", "--engine", "clickhouse")
    wh(one, "migrate", "--engine", "clickhouse")
    columns = ("SELECT table, name, type FROM system.columns WHERE database = 'wh' AND table IN (SELECT name FROM "
               "system.tables WHERE database = 'wh' AND engine != 'MaterializedView') ORDER BY table, position")  # fmt: skip
    flat = {(t, n, ty) for t, n, ty in rows(single, columns) if t != "schema_migrations"}
    for node in (a, b):
        engines = dict(rows(node, "SELECT name, engine FROM system.tables WHERE database = 'wh'"))
        assert engines["market_ticks"] == "Distributed" and engines["market_ticks_local"] == "MergeTree"
        mine = rows(node, columns)
        assert {(t, n, ty) for t, n, ty in mine if not t.endswith("_local") and t != "schema_migrations"} == flat
        assert {(t.removesuffix("_local"), n, ty) for t, n, ty in mine if t.endswith("_local")} == flat

    # the same file into both: every row once, spread over both shards, one instrument per shard
    files = [str(feed / "quotes.parquet"), str(feed / "trades.parquet")]
    for env in (cl, one):
        wh(env, "import", *files, "--format", "parquet", "--engine", "clickhouse")
    again = wh(cl, "import", *files, "--format", "parquet", "--engine", "clickhouse")  # nothing new
    assert "│ clickhouse │" in again and "│            0 │" in again, again
    count = ("SELECT (SELECT count() FROM wh.market_ticks) AS q, (SELECT count() FROM wh.trades) AS t, "
             "(SELECT count() FROM wh.rejects) AS r")  # fmt: skip
    assert rows(a, count) == rows(b, count) == rows(single, count)
    q, t, r = rows(single, count)[0]
    assert q > 40_000 and t > 10_000 and r > 0
    local = [rows(n, "SELECT count(), uniqExact(symbol) FROM wh.market_ticks_local")[0] for n in (a, b)]
    assert all(n > 0 for n, _ in local) and sum(n for n, _ in local) == q, local
    per_node = [set(s for (s,) in rows(n, "SELECT DISTINCT symbol FROM wh.market_ticks_local")) for n in (a, b)]
    assert not per_node[0] & per_node[1] and len(per_node[0] | per_node[1]) == 24  # sharded by instrument
    distinct = "SELECT count() = uniqExact(exchange, symbol, timestamp, bid, ask) FROM wh.market_ticks"
    assert rows(a, distinct) == [(1,)]
    # the instrument catalog, kept by each node's views, reads like one server's
    assert as_json(cl, "query", "instruments", "--engine", "clickhouse") == \
        as_json(one, "query", "instruments", "--engine", "clickhouse")  # fmt: skip

    # analytics through the Distributed tables = one server's, to the last digit
    symbol = sorted(per_node[0])[0]
    for query in (
        ("zscore", symbol, "--limit", "500"),
        ("vwap_rolling", symbol, "--limit", "500"),
        ("bars", symbol, "--limit", "300"),
        ("spreads", symbol),
        ("realized_vol", symbol),
    ):
        assert as_json(cl, "query", *query, "--engine", "clickhouse") == \
            as_json(one, "query", *query, "--engine", "clickhouse"), query  # fmt: skip

    # materialized bars: built in the Distributed stage, swapped in on each node's _local table
    for env in (cl, one):
        wh(env, "refresh", "bars_1m", "--engine", "clickhouse")
        wh(env, "refresh", "bars_1m", "--engine", "clickhouse")  # re-running a day replaces it
    bars = "SELECT exchange, symbol, bar_start, open, high, low, close, volume, trades FROM wh.bars_1m ORDER BY ALL"
    assert rows(a, bars) == rows(single, bars) and len(rows(single, bars)) > 100
    assert all(rows(n, "SELECT count() FROM wh.bars_1m_local")[0][0] > 0 for n in (a, b))

    # the ledger: a replay written twice replaces its traders' rows on every shard
    for env in (cl, one):
        for _ in range(2):
            wh(env, "replay", "--strategy", "zscore", "--sweep", "window=30,60,90", "--symbols", ",".join(sorted(
               per_node[0] | per_node[1])[:6]), "--from", "2024-01-02", "--to", "2024-01-03", "--engine",
               "clickhouse", "--write-to", "clickhouse")  # fmt: skip
    ledger = ("SELECT (SELECT count() FROM wh.orders) AS o, (SELECT count() FROM wh.fills) AS f, "
              "(SELECT count() FROM wh.traders) AS t, (SELECT count() FROM wh.portfolio_snapshots) AS s")  # fmt: skip
    assert rows(a, ledger) == rows(single, ledger) and rows(single, ledger)[0][2] == 3
    # sums over shards add in another order: equal within 1e-12, not to the bit
    board = ("query", "leaderboard", "--engine", "clickhouse")
    assert same(as_json(cl, *board), as_json(one, *board))
    for env in (cl, one):
        wh(env, "refresh", "leaderboard_daily", "--engine", "clickhouse")
    daily = "SELECT day, rank, trader, nav, pnl FROM wh.leaderboard_daily ORDER BY ALL"
    assert same(rows(a, daily), rows(single, daily)) and len(rows(single, daily)) == 3


def same(x: object, y: object) -> bool:
    """Equal, floats within 1e-12 relative."""
    if isinstance(x, float) and isinstance(y, float):
        return x == pytest.approx(y, rel=1e-12, abs=1e-9)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
    return x == y


def test_a_retried_batch_is_stored_once_and_the_reader_stays_read_only(servers: dict, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The consumer's retry path: the same batch with the same insert_deduplication_token,
    through the Distributed table, twice — each shard drops its block the second time. A
    Distributed query runs on the shards as its sender: wh_reader cannot write through it."""
    from warehouse.config import get_settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sql.engines import open_engine
    from warehouse.sql.migrate import migrate

    a, _ = servers["nodes"]
    for k, v in env_for(servers, tmp_path / "home", cluster=True).items():
        if k.startswith("WH_"):
            monkeypatch.setenv(k, v)
    n = 2_000
    batch = pa.table({
        "timestamp": pa.array([1_700_000_000_000_000_000 + i * 1_000_000 for i in range(n)], pa.int64()),
        "received_at": pa.array([1_700_000_000_000_000_000 + i * 1_000_000 for i in range(n)], pa.int64()),
        "exchange": ["x"] * n, "symbol": [f"S{i % 7}" for i in range(n)], "asset_class": ["crypto"] * n,
        "bid": [100.0 + i for i in range(n)], "ask": [100.5 + i for i in range(n)],
        "bid_size": [1.0] * n, "ask_size": [1.0] * n, "seq": pa.array([None] * n, pa.int64()),
    })  # fmt: skip
    batch = batch.cast(QUOTE_SCHEMA)
    with open_engine("clickhouse", get_settings()) as eng:
        migrate(eng)
        before = eng.query("SELECT count() AS n FROM wh.market_ticks").column("n")[0].as_py()
        for _ in range(2):
            eng.insert("wh.market_ticks", batch, dedup_token=f"retry-{tmp_path.name}")
        after = eng.query("SELECT count() AS n FROM wh.market_ticks").column("n")[0].as_py()
    assert after - before == n
    reader = client(a, read_only=True)
    try:
        assert reader.query("SELECT count() FROM wh.market_ticks").result_rows[0][0] == after
        with pytest.raises(Exception, match=r"(?i)readonly|not enough privileges|ACCESS_DENIED"):
            reader.command("INSERT INTO wh.market_ticks (exchange, symbol) VALUES ('x', 'EVIL')")
    finally:
        reader.close()
