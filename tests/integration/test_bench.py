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
    assert notes, "progress notes reach the log callback"
