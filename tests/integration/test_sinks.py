"""A sink that fails keeps the failure's cause in its error (hardening issue, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]


def test_duckdb_commit_failure_keeps_its_cause(tmp_path: Path) -> None:
    """A full disk, injected: COMMIT fails (DuckDB has then ended the transaction), and the
    rollback that follows must not replace the cause with 'no transaction is active'. (The
    real thing, a 2 MB tmpfs under `wh generate`, is tests/cli/test_errors.py; it needs root.)"""
    import duckdb
    import pyarrow as pa

    from warehouse.config import Settings
    from warehouse.errors import SinkError
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.pipeline import run_import
    from warehouse.sinks.duckdb import DuckDBSink

    class FullDisk:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def execute(self, sql: str, *args: object):
            if sql.strip().upper() == "COMMIT":
                self._con.execute("ROLLBACK")
                raise duckdb.IOException('Could not write file "warehouse.duckdb.wal": No space left on device')
            return self._con.execute(sql, *args)

        def __getattr__(self, name: str):
            return getattr(self._con, name)

    sink = DuckDBSink(Settings(home=tmp_path / "wh"))
    sink.engine.con = FullDisk(sink.engine.con)  # type: ignore[assignment]
    with pytest.raises(SinkError) as caught:
        run_import(SyntheticFeed(ticks=2_000, seed=1).batches(), source="s", sinks=[sink])
    assert "No space left on device" in str(caught.value) and "rollback" not in str(caught.value)
    assert "duckdb" in str(caught.value)
    sink.engine.con = sink.engine.con._con  # type: ignore[attr-defined]
    assert sink.engine.query("SELECT count(*) AS n FROM wh.market_ticks").column("n")[0].as_py() == 0
    assert isinstance(pa, object)
    sink.close()


def test_duckdb_keeps_the_stream_state_with_the_offsets(tmp_path: Path) -> None:
    """The sanitizer's state rides with the offsets in one transaction and comes back byte for
    byte; a failed batch leaves both as they were (the restart proof itself: the unit test of
    batch-edge independence and the slow SIGKILL / restart tests)."""
    import pyarrow as pa

    from warehouse.config import Settings
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.pipeline import BatchStep
    from warehouse.sinks import DuckDBSink
    from warehouse.sinks.base import StreamPosition

    settings = Settings(home=tmp_path / "wh")
    step = BatchStep("kafka:t")
    result = step(SyntheticFeed(ticks=2_000, seed=3).batches())
    state = step.snapshot()
    assert state and all(isinstance(v, bytes) for v in state.values())
    with DuckDBSink(settings, hold=False) as sink:
        sink.write(result.batch, StreamPosition("g", "t", {0: (0, 1_999)}, state=state))
        assert sink.stored_offsets("g", "t") == {0: 2_000}
        assert sink.stored_state("g", "t") == state
        bad = {"market_ticks": pa.table({"nonsense": [1]})}  # refused: nothing of the batch is kept
        with pytest.raises(Exception):  # noqa: B017 — any refusal will do; the point is what stays
            sink.write(bad, StreamPosition("g", "t", {0: (2_000, 2_999)}, state={"x": b"y"}))
        assert sink.stored_offsets("g", "t") == {0: 2_000} and sink.stored_state("g", "t") == state
    restored = BatchStep("kafka:t")
    restored.restore(state)
    assert restored.snapshot() == state
