"""`wh` commands a user relies on: errors, other files going on, demo without samples, Parquet, help, bench."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from warehouse.cli import main as cli

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
runner = CliRunner()
HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"


def wh(*args: str):
    return runner.invoke(cli.app, list(args))


def count(engine: str, table: str) -> int:
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    eng = open_engine(engine, get_settings())
    try:
        return int(eng.query(f"SELECT count(*) AS n FROM wh.{table}").column("n")[0].as_py())
    finally:
        eng.close()


def test_a_bad_file_is_reported_and_the_other_files_still_import(home, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    nobid = tmp_path / "nobid.csv"
    nobid.write_text("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_amount\nx,B,1,1,1,1,1\n")
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "x,BTC,1582329601096000,1582329601096100,1,101,100,1\n")
    r = wh("import", str(empty), str(nobid), str(good))
    assert r.exit_code == 1
    assert "Error:" in r.output and "empty file" in r.output and "bid_price" in r.output
    assert count("duckdb", "market_ticks") == 1
    assert count("clickhouse", "market_ticks") == 1


def test_raise_policy_aborts_before_writing(home, tmp_path: Path) -> None:
    p = tmp_path / "crossed.csv"
    p.write_text(
        HEADER + "x,BTC,1582329601096000,1582329601096100,1,101,100,1\n"
        "x,BTC,1582329601097000,1582329601097100,1,99,100,1\n"
    )
    r = wh("import", str(p), "--policy", "crossed_book=raise", "--engine", "duckdb")
    assert r.exit_code == 1 and "crossed_book" in r.output
    assert count("duckdb", "market_ticks") == 0
    r = wh("import", str(p), "--policy", "nonsense=raise")
    assert r.exit_code == 1 and "Error:" in r.output


def test_demo_generates_a_synthetic_day_without_the_samples(home, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WH_SAMPLES_DIR", str(tmp_path / "absent"))
    r = wh("demo", "--ticks", "30000")
    assert r.exit_code == 0, r.output
    assert "generating a synthetic day" in r.output
    assert "wh query zscore BTC (BTCUSDT on binance)" in r.output  # the asset, resolved by the catalog
    assert count("duckdb", "market_ticks") == count("clickhouse", "market_ticks") > 0


def test_generate_to_parquet_then_import_is_idempotent(home, tmp_path: Path) -> None:
    out = tmp_path / "feed"
    r = wh("generate", "--ticks", "20000", "--seed", "3", "--out", str(out))
    assert r.exit_code == 0, r.output
    for _ in range(2):
        for name in ("quotes", "trades"):
            kind = "quotes" if name == "quotes" else "trades"
            r = wh("import", str(out / f"{name}.parquet"), "--format", "parquet", "--kind", kind)
            assert r.exit_code == 0, r.output
    import pyarrow.parquet as pq

    nq = pq.ParquetFile(out / "quotes.parquet").metadata.num_rows
    nt = pq.ParquetFile(out / "trades.parquet").metadata.num_rows
    assert nq + nt == 20_000
    for engine in ("duckdb", "clickhouse"):
        assert count(engine, "market_ticks") == nq
        assert count(engine, "trades") == nt


def test_query_list_and_help() -> None:
    r = wh("query", "--list")
    assert r.exit_code == 0 and "zscore" in r.output and "symbols" in r.output
    for cmd in ("import", "generate", "query", "migrate", "demo", "bench"):
        assert wh(cmd, "--help").exit_code == 0


def test_a_locked_warehouse_gives_a_clear_error(home, monkeypatch) -> None:
    import subprocess
    import sys
    import time

    assert wh("migrate", "--engine", "duckdb").exit_code == 0
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(30)",
         str(home / "warehouse.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("WH_LOCK_WAIT_SECONDS", "1")
        t = time.perf_counter()
        r = wh("query", "zscore", "BTCUSDT", "--engine", "duckdb")
        assert r.exit_code == 1
        assert "Error:" in r.output and "one writer per file" in r.output and "waited 1 s" in r.output
        assert 1 <= time.perf_counter() - t < 5
    finally:
        holder.kill()
        holder.wait()


def test_bench_analytics_runs_every_case_with_equal_row_counts(home) -> None:
    """The benchmark's machinery at a small scale (figures come from the full run, not from here)."""
    r = wh("bench", "analytics", "--ticks", "200000", "--traders", "2000", "--repeats", "1")
    assert r.exit_code == 0, (r.output, r.exception)
    for case in ("bars_1m (all symbols)", "spreads", "realized_vol", "vwap_rolling", "leaderboard top 100 of 2,000"):
        line = next(ln for ln in r.output.splitlines() if ln.startswith(case))
        assert len(line.split()) >= 7, line
    assert "ROW COUNTS DIFFER" not in r.output
