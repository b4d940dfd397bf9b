"""`wh ingest --pipeline` and `wh import --pipeline`: a spec decides topic, group, rules, sinks
and batch size (stream) or format, mapping, files and sinks (import) — both drivers run the
same batch step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.config import Settings
from warehouse.ingest.kafka import produce
from warehouse.ingest.synthetic import SyntheticFeed

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
WH = [sys.executable, "-m", "warehouse.cli.main"]


def _count(home: Path, engine: str, sql: str) -> int:
    from warehouse.sql.engines import close_embedded, open_engine

    try:
        with open_engine(engine, Settings(home=home), read_only=True) as eng:
            return int(eng.query(sql).column(0)[0].as_py())
    finally:
        close_embedded()


@pytest.mark.kafka
def test_ingest_follows_its_spec(home: Path, tmp_path: Path, broker: str, topic: str) -> None:
    report = produce(broker, topic, SyntheticFeed(ticks=2_000, seed=9).batches())
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"name: mine\nsource: {{kafka: {{topic: {topic}, group: spec-group}}}}\n"
                    "sinks: [duckdb]\nbatch: {rows: 500, seconds: 0.5}\n"
                    "sanitize: {policies: {crossed_book: reject}}\n")  # fmt: skip
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    r = subprocess.run([*WH, "ingest", "--pipeline", str(spec), "--stop-when-idle", "2"], capture_output=True,
                       text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("batch ") >= 4  # batch.rows 500 over 2,000 messages
    stored = _count(home, "duckdb", "SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades)")
    assert stored == report.delivered
    assert _count(home, "duckdb", "SELECT count(*) FROM wh.kafka_offsets WHERE group_id = 'spec-group'") >= 1
    assert not (home / "clickhouse").exists()  # not a sink of this spec


def test_import_reads_the_files_its_spec_names(home: Path, tmp_path: Path) -> None:
    landing = home / "landing" / "fx"
    landing.mkdir(parents=True)
    lines = ["time,bid,ask"] + [f"2024-01-02 10:00:{i // 3:02d}.000,{1.1 + i * 1e-5:.5f},{1.1002 + i * 1e-5:.5f}"
                                for i in range(90)]  # fmt: skip
    (landing / "eurusd.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "WH_HOME": str(home)}
    r = subprocess.run([*WH, "import", "--pipeline", "fx_csv"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for engine in ("duckdb", "clickhouse"):
        got = _count(home, engine, "SELECT count(*) FROM wh.market_ticks WHERE symbol = 'EURUSD' AND bid_size IS NULL")
        assert got == 90, engine
    r = subprocess.run([*WH, "import", "--pipeline", "ticks"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "reads Kafka, not files" in r.stderr


def test_both_drivers_run_the_one_batch_step() -> None:
    """`wh import` (run_import) and `wh ingest` (Ingestor) both go through BatchStep."""
    import inspect

    from warehouse.ingest import consumer
    from warehouse.pipeline import run

    for module in (consumer, run):
        src = inspect.getsource(module)
        assert "BatchStep(" in src and ".process(" not in src, module.__name__
