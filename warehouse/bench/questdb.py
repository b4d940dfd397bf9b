"""`wh bench questdb`: wh's QuestDB write path beside the ILP client's own ceiling, same run.

A QuestDB is started for the run in a temporary directory (isolated: nothing lands in
yours). N synthetic quotes are sanitized once, cut into requests of `request_rows`, then
written twice into a freshly migrated `wh_market_ticks`:

* ceiling — the same rows already serialised into the client's ILP buffers before the
  clock starts; only `Sender.flush(buf, transactional=True)` is timed;
* wh — `QuestDBEngine.insert` per request, as the sink does: Arrow → pyarrow-backed pandas,
  `Buffer.dataframe`, transactional flush.

Both finish with the WAL applied and count() == N (rows written = rows queryable).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from warehouse.bench.common import AgainstCeiling, Log, machine, quiet
from warehouse.errors import WarehouseError

DROPS = ("DROP TABLE IF EXISTS wh_market_ticks", "DROP TABLE IF EXISTS wh_trades", "DROP TABLE IF EXISTS wh_rejects",
         "DROP TABLE IF EXISTS wh_schema_migrations")  # fmt: skip


@dataclass
class QuestDBWriteBench(AgainstCeiling):
    machine: str
    rows: int
    request_rows: int
    ceiling_seconds: float  # flush of pre-serialised buffers
    wh_seconds: float  # QuestDBEngine.insert, whole path
    to_pandas_seconds: float  # parts of wh_seconds, timed in a separate pass
    dataframe_seconds: float
    bytes: int  # ILP bytes of the ceiling's buffers


def quotes(rows: int) -> pa.Table:
    """`rows` sanitized synthetic quotes in the write schema."""
    from warehouse.ingest.synthetic import SyntheticFeed
    from warehouse.pipeline import BatchStep

    feed = SyntheticFeed(instruments=24, ticks=int(rows * 1.3) + 1_000, seed=5, chunk=100_000)
    step = BatchStep(feed.source)
    parts: list[pa.Table] = []
    have = 0
    for b in feed.batches():
        t = step([b]).batch.get("market_ticks")
        if t is not None and t.num_rows:
            parts.append(t)
            have += t.num_rows
        if have >= rows:
            break
    return pa.concat_tables(parts).slice(0, rows)


def run(rows: int = 1_000_000, request_rows: int = 50_000, *, log: Log = quiet) -> QuestDBWriteBench:
    import pandas as pd

    from warehouse.config import QuestDBSettings
    from warehouse.servers.questdb import LocalQuestDBServer
    from warehouse.sql.engines import QuestDBEngine
    from warehouse.sql.engines.questdb import ilp_rows
    from warehouse.sql.migrate import migrate

    work = Path(tempfile.mkdtemp(prefix="wh-bench-questdb-"))
    srv = LocalQuestDBServer(work / "questdb")
    try:
        log("starting QuestDB")
        srv.fetch()
        srv.start(timeout=120)
        from pydantic import SecretStr

        engine = QuestDBEngine(QuestDBSettings(client_conf=SecretStr(srv.client_conf)))
        log(f"generating and sanitizing {rows:,} quotes")
        data = quotes(rows)
        chunks = [data.slice(i, request_rows) for i in range(0, data.num_rows, request_rows)]

        def fresh() -> None:
            for drop in DROPS:
                engine.command(drop)
            migrate(engine)

        def applied(label: str) -> None:
            engine.wait_applied(timeout=300)
            n = int(engine.query("SELECT count() FROM wh.market_ticks").column(0)[0].as_py())
            if n != data.num_rows:
                raise WarehouseError(f"{label}: {n:,} rows queryable of {data.num_rows:,} written")

        log(f"ceiling: serialising {len(chunks)} requests, then flushing them")
        fresh()
        buffers = []
        for c in chunks:
            buf = engine.sender.new_buffer()
            ilp_rows(buf, "wh.market_ticks", c)
            buffers.append(buf)
        size = sum(len(b) for b in buffers)
        t = time.perf_counter()
        for buf in buffers:
            engine.sender.flush(buf, transactional=True)
        ceiling = time.perf_counter() - t
        applied("ceiling")
        del buffers

        log("wh: QuestDBEngine.insert per request")
        fresh()
        t = time.perf_counter()
        for c in chunks:
            engine.insert("wh.market_ticks", c)
        wh = time.perf_counter() - t
        applied("wh")

        t = time.perf_counter()
        frames = [c.to_pandas(types_mapper=pd.ArrowDtype) for c in chunks]
        to_pandas = time.perf_counter() - t
        from warehouse.sql.engines.questdb import SYMBOL_COLUMNS

        t = time.perf_counter()
        for df in frames:
            engine.sender.new_buffer().dataframe(df, table_name="wh_market_ticks",
                                                 symbols=list(SYMBOL_COLUMNS["market_ticks"]), at="timestamp")  # fmt: skip
        dataframe = time.perf_counter() - t
        engine.close()
        return QuestDBWriteBench(machine=machine(), rows=data.num_rows, request_rows=request_rows,
                                 ceiling_seconds=ceiling, wh_seconds=wh, to_pandas_seconds=to_pandas,
                                 dataframe_seconds=dataframe, bytes=size)  # fmt: skip
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
