"""The cluster DDL (ddl/clickhouse_cluster) as wh renders it for a Keeper-backed cluster — the
path no server here can run (chdb has no Keeper): checked as text and by ClickHouse's grammar
in sqlglot. The node-by-node path runs against real servers in test_clickhouse_cluster.py."""

from __future__ import annotations

import re

import pytest
import sqlglot

from warehouse.config import ClickHouseSettings
from warehouse.errors import ConfigError
from warehouse.sql.files import ddl_dir, split_statements
from warehouse.sql.migrate import discover, render

KEEPER = {"on_cluster": "ON CLUSTER prod", "cluster": "prod",
          "merge_tree": "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
          "aggregating_merge_tree": "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
                                    "'{replica}')",
          "replacing_merge_tree": "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
                                  "'{replica}', version)"}  # fmt: skip


def statements(values: dict[str, str]) -> list[str]:
    return [stmt for mig in discover("clickhouse_cluster", ddl_dir("clickhouse_cluster"))
            for stmt in split_statements(render(mig.path.read_text(), values))]  # fmt: skip


def test_keeper_rendering_puts_every_statement_on_the_cluster_with_replicated_tables() -> None:
    stmts = statements(KEEPER)
    assert len(stmts) == 36  # the database; 14 tables and 2 stages, each _local + Distributed; 2 views; a backfill
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS wh ON CLUSTER prod"  # on every node, before its tables
    stmts = stmts[1:]
    for stmt in stmts:
        if stmt.startswith("INSERT INTO wh.quote_zscores_local"):  # the stored z-scores of quotes stored before them
            continue
        assert not re.search(r"\{(on_cluster|merge_tree|aggregating_merge_tree|replacing_merge_tree|cluster)\}", stmt)
        m = re.match(r"CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS wh\.(\w+) ON CLUSTER prod\b", stmt)
        assert m, stmt[:80]
        name = m.group(2)
        if m.group(1) == "MATERIALIZED VIEW":  # the catalog's views: on each node's _local tables
            assert re.search(r"TO wh\.instruments_local AS", stmt) and re.search(r"FROM wh\.\w+_local GROUP BY", stmt)
        elif name == "instruments_local":
            assert (
                "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in stmt
            )
        elif name == "quote_zscores_local":  # versions of a quote's z-score: the newest kept
            assert ("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)"
                    in stmt)  # fmt: skip
        elif name.endswith("_local"):  # stages too: their own Keeper path, not a copy of their table's
            assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in stmt, stmt
        else:
            assert re.search(rf"ENGINE = Distributed\(prod, wh, {name}_local, cityHash64\([a-z_, ]+\)\)$", stmt), stmt
        sqlglot.parse_one(stmt, read="clickhouse")  # ClickHouse's grammar, as sqlglot knows it


def test_node_by_node_rendering_has_no_on_cluster_and_plain_merge_tree() -> None:
    stmts = statements(
        {
            "on_cluster": "",
            "cluster": "wh_local",
            "merge_tree": "MergeTree",
            "aggregating_merge_tree": "AggregatingMergeTree",
            "replacing_merge_tree": "ReplacingMergeTree(version)",
        }
    )
    assert not any("ON CLUSTER" in s or "Replicated" in s for s in stmts)
    assert sum("ENGINE = MergeTree" in s for s in stmts) == 14  # 12 tables, 2 stages


def test_cluster_nodes_setting_is_checked_without_showing_the_password() -> None:
    base = {"url": "http://wh:s3cret@node1:8123/", "cluster": "wh_local"}
    ok = ClickHouseSettings(**base, nodes="node1:8123, node2:8124")
    assert [(a.host, a.port, a.username) for a in ok.node_addresses()] == [("node1", 8123, "wh"), ("node2", 8124, "wh")]
    assert all(a.password.get_secret_value() == "s3cret" for a in ok.node_addresses())
    for bad in ("node1", "node1:0", "user:pw@node2:8123", "node1:8123,,"):
        with pytest.raises(ConfigError) as err:
            ClickHouseSettings(**base, nodes=bad).node_addresses()
        assert "s3cret" not in str(err.value) and "pw" not in str(err.value)
    with pytest.raises(ConfigError, match="WH_CLICKHOUSE_CLUSTER"):
        ClickHouseSettings(url=base["url"], nodes="node1:8123").node_addresses()
