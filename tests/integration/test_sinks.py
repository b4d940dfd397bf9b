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
