"""Engine adapters: one module per engine behind one base class (base.py).

    duckdb.py      DuckDB file, transactional
    clickhouse.py  ClickHouse: a server over HTTP, or embedded (chdb) behind the same client API
    questdb.py     QuestDB, the hot tier (a server: /exec + ILP over HTTP); named explicitly, never in "all"

`open_engine(name, settings)` is how everything above gets one (a context manager:
`with open_engine("duckdb", settings) as eng: …`). Capability flags on the class
(`transactional`, `partitioned_by_day`) replace asking which engine it is.
"""

from __future__ import annotations

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.sql.engines.base import ENGINES, Engine, EngineName, naive_timestamps, utc_timestamps
from warehouse.sql.engines.clickhouse import ClickHouseEngine, close_embedded
from warehouse.sql.engines.duckdb import DuckDBEngine
from warehouse.sql.engines.questdb import QuestDBEngine

__all__ = ["ENGINES", "ClickHouseEngine", "DuckDBEngine", "Engine", "EngineName", "QuestDBEngine", "close_embedded",
           "engine_names", "naive_timestamps", "open_engine", "utc_timestamps"]  # fmt: skip


def open_engine(name: str, settings: Settings, *, read_only: bool = False, for_replay: bool = False) -> Engine:
    """`for_replay`: DuckDB's buffer pool is capped (WH_REPLAY_MEMORY_LIMIT) so that streaming a long range
    does not keep every block it read (peak RSS from 1 M to 20 M replayed ticks: +370 MB uncapped,
    +27-34 MB at the default 32MB, at the same speed: a replay reads each block once)."""
    if name == "duckdb":
        config = {"memory_limit": settings.replay_memory_limit} if for_replay else None
        return DuckDBEngine(settings.duckdb_path, read_only=read_only, wait=settings.lock_wait_seconds, config=config)
    if name == "clickhouse":
        return ClickHouseEngine(settings, read_only=read_only)
    if name == "questdb":
        return QuestDBEngine(read_only=read_only)  # QDB_CLIENT_CONF (warehouse/config.py QuestDBSettings)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join((*ENGINES, 'questdb'))}")


def engine_names(choice: str) -> list[EngineName]:
    if choice == "all":
        return list(ENGINES)
    if choice in ENGINES:
        return [choice]
    if choice == "questdb":  # the hot tier: by name only (a server that may not be configured)
        return ["questdb"]
    raise ConfigError(f"unknown engine {choice!r}; choose duckdb, clickhouse, all or questdb")
