"""The benchmarks' machinery at a small scale: they run and return consistent figures (the figures
themselves come from full runs: BENCHMARKS.md). `wh bench analytics` is tests/cli/test_commands.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]


def test_import_bench_keeps_its_work_directory_when_asked(home: Path, tmp_path: Path) -> None:
    from warehouse.bench import imports

    r = imports.run(5_000, keep=tmp_path / "work")
    assert r.rows == 5_000 and r.ceiling_seconds > 0 and r.wh_seconds > 0
    assert r.ratio == pytest.approx(r.wh_rate / r.ceiling_rate)
    assert (tmp_path / "work" / "feed" / "quotes.parquet").is_file() and (
        tmp_path / "work" / "ceiling.duckdb"
    ).is_file()


def test_zscore_bench_measures_both_engines(home: Path) -> None:
    from warehouse.bench import zscore

    notes: list[str] = []
    r = zscore.run(5_000, repeats=2, log=notes.append)
    assert [t.engine for t in r.throughput] == ["duckdb", "clickhouse"]
    assert all(t.rows == 5_000 and t.rate > 0 for t in r.throughput)  # every stored quote scored once
    assert [(lat.engine, lat.exchange) for lat in r.latency] == [("duckdb", ""), ("duckdb", "binance"),
                                                                 ("clickhouse", ""), ("clickhouse", "binance")]  # fmt: skip
    assert all(0 < lat.p50_ms <= lat.p95_ms for lat in r.latency)
    assert [k.engine for k in r.kernel] == ["duckdb", "clickhouse"]
    assert all(k.rows == 5_000 and k.same_nulls and k.z_sum_difference < 1e-9 for k in r.kernel), r.kernel
    assert [st.engine for st in r.stored] == ["duckdb", "clickhouse"]
    assert all(st.rows == 5_000 and st.same_nulls and st.z_sum_difference < 1e-9 for st in r.stored), r.stored
    assert notes, "progress notes reach the log callback"


def test_freshness_latencies_are_taken_on_the_conservative_side() -> None:
    """Tick n's produce time is the start of its chunk; it is queryable at the end of the first
    poll that counts ≥ n rows (counts never go back)."""
    import numpy as np

    from warehouse.bench.freshness import latencies
    from warehouse.errors import WarehouseError

    marks = [(0, 10.0), (3, 10.5), (6, 11.0)]  # ticks 1–3 from 10.0, 4–6 from 10.5, 7–8 from 11.0
    samples = [(10.2, 0), (10.6, 2), (10.9, 5), (11.3, 4), (11.6, 8)]  # a poll that read a stale 4
    lat = latencies(marks, samples, 8)
    np.testing.assert_allclose(lat, [0.6, 0.6, 0.9, 0.4, 0.4, 1.1, 0.6, 0.6])
    with pytest.raises(WarehouseError, match="only 8 of 9 ticks became queryable"):
        latencies(marks, samples, 9)


@pytest.mark.slow
@pytest.mark.questdb
@pytest.mark.kafka
def test_freshness_bench_runs_its_own_servers_and_counts_every_tick(tmp_path: Path) -> None:
    from servers import require_server_tools

    from warehouse.bench import freshness

    require_server_tools()
    notes: list[str] = []
    r = freshness.run(2_000, 3.0, log=notes.append, keep=tmp_path)
    assert r.produced == 6_000 and r.delivery_failures == 0
    assert [s.sink for s in r.sinks] == ["questdb", "clickhouse"]
    for s in r.sinks:
        assert s.rows == 6_000 and 0 < s.p50 <= s.p99 <= s.max < 60 and s.rows_per_s > 0, s
    assert any("producing 6,000 ticks" in n for n in notes)
    logs = list(tmp_path.rglob("ingest-*.log"))  # kept (keep=): the consumers said where they started
    assert len(logs) == 2 and all("assigned freshness-" in p.read_text() for p in logs)


@pytest.mark.questdb
def test_questdb_bench_writes_every_row_on_both_paths() -> None:
    """`wh bench questdb` at a small scale: both paths end with count() == rows (it raises
    otherwise), and the ratio is the two rates' quotient."""
    from servers import require_server_tools

    from warehouse.bench import questdb

    require_server_tools()
    r = questdb.run(30_000, 10_000)
    assert r.rows == 30_000 and r.request_rows == 10_000 and r.bytes > 30_000 * 100
    assert r.ceiling_seconds > 0 and r.wh_seconds > 0 and r.ratio == pytest.approx(r.wh_rate / r.ceiling_rate)
