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


@pytest.mark.clickhouse
def test_embedded_clickhouse_inserts_read_the_arrow_table_in_place_and_store_it_exactly(tmp_path: Path,
                                                                                       monkeypatch) -> None:  # fmt: skip
    """The embedded engine inserts through chdb's Python() table function (not clickhouse-
    connect's Native temp file): every type wh stores comes back as it went in, nulls
    included, and a repeated token is dropped as on the other path."""
    import pyarrow as pa

    import warehouse.sql.engines.clickhouse as ch
    from warehouse.config import Settings
    from warehouse.records import QUOTE_SCHEMA
    from warehouse.sql.engines import close_embedded, open_engine
    from warehouse.sql.migrate import migrate

    used = []
    real = ch._python_insert
    monkeypatch.setattr(ch, "_python_insert", lambda *a: used.append(real(*a)) or used[-1])
    n = 5_000
    ts = [1_700_000_000_123_456_789 + i * 1_001 for i in range(n)]
    quotes = pa.table({
        "timestamp": ts, "received_at": [t + 7 for t in ts], "exchange": ["x", "y"] * (n // 2),
        "symbol": [f"S{i % 13}" for i in range(n)], "asset_class": ["crypto"] * n,
        "bid": [100.0 + i / 7 for i in range(n)], "ask": [100.5 + i / 7 for i in range(n)],
        "bid_size": [None if i % 5 == 0 else i / 3 for i in range(n)], "ask_size": [1.5] * n,
        "seq": pa.array([None if i % 3 else i for i in range(n)], pa.int64()),
    }).cast(QUOTE_SCHEMA)  # fmt: skip
    ledger = pa.table({"order_id": ["o1", "o2"], "trader": ["t", "t"], "created_at": pa.array(ts[:2], pa.timestamp("ns", tz="UTC")),
                       "updated_at": pa.array(ts[:2], pa.timestamp("ns", tz="UTC")), "symbol": ["S1", "S2"],
                       "asset_class": ["crypto"] * 2, "side": ["buy", "sell"], "order_type": ["limit", "market"],
                       "time_in_force": ["GTC", "IOC"], "post_only": [True, False], "qty": [1.0, 2.0],
                       "limit_price": [10.0, None], "filled_qty": [0.0, 2.0], "avg_price": [None, 11.0],
                       "status": ["new", "filled"], "reason": [None, "x"], "exchange": ["x", "y"]})  # fmt: skip
    settings = Settings(home=tmp_path / "h")
    with open_engine("clickhouse", settings) as eng:
        migrate(eng)
        for _ in range(2):
            eng.insert("wh.market_ticks", quotes, dedup_token="tok-1")
        eng.insert("wh.orders", ledger)
        back = eng.query("SELECT * FROM wh.market_ticks ORDER BY timestamp").select(quotes.column_names)
        orders = eng.query("SELECT * FROM wh.orders ORDER BY order_id").select(ledger.column_names)
    close_embedded()
    assert used and all(used), "the embedded insert fell back to insert_arrow"
    assert back.num_rows == n
    for name in quotes.column_names:
        assert back.column(name).to_pylist() == quotes.column(name).to_pylist(), name
    assert orders.to_pylist() == ledger.to_pylist()
