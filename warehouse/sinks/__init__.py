"""Sinks: one protocol, one module per engine.

    class Sink(Protocol):
        name: str
        def write(self, batch: WriteBatch, position=None) -> WriteCounts   # idempotent
        def flush(self) -> None
        def close(self) -> None                                           # also via `with`

A `WriteBatch` maps table name (market_ticks, trades, rejects, gaps, stream_losses) →
Arrow table in the schema of records.py. `write` stores only rows whose dedup key is not
stored yet, so replaying a batch — a re-import, a retry after a crash — adds nothing.
`open_sinks(names, settings)` opens them by name (the only place that knows every sink).
`questdb` is the hot tier (a server, QDB_CLIENT_CONF): quotes, trades and rejects only.
"""

from __future__ import annotations

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.sinks.base import Sink, WriteBatch, WriteCounts
from warehouse.sinks.clickhouse import ClickHouseSink
from warehouse.sinks.duckdb import DuckDBSink
from warehouse.sinks.memory import MemorySink
from warehouse.sinks.questdb import QuestDBSink

__all__ = ["SINK_NAMES", "ClickHouseSink", "DuckDBSink", "MemorySink", "QuestDBSink", "Sink", "WriteBatch", "WriteCounts",
           "check_sink_names", "open_sinks"]  # fmt: skip


SINK_NAMES = ("duckdb", "clickhouse", "questdb")


def check_sink_names(names: list[str]) -> None:
    """Refuse an empty list, an unknown name or a repeated one (ConfigError). A consumer with
    no sink would commit offsets for messages stored nowhere: the data would be gone for its group."""
    if not names:
        raise ConfigError(f"no sink given; name one or more of {', '.join(SINK_NAMES)}")
    for n in names:
        if n not in SINK_NAMES:
            raise ConfigError(f"unknown sink {n!r}; choose from {', '.join(SINK_NAMES)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{', '.join(twice)} given twice; name each sink once")


def open_sinks(names: list[str], settings: Settings, *, hold_duckdb: bool = True) -> list[Sink]:
    check_sink_names(names)
    sinks: list[Sink] = []
    try:
        for name in names:
            if name == "duckdb":
                sinks.append(DuckDBSink(settings, hold=hold_duckdb))
            elif name == "clickhouse":
                sinks.append(ClickHouseSink(settings))
            elif name == "questdb":
                sinks.append(QuestDBSink(settings))
            else:
                raise KeyError(name)
    except BaseException:
        for s in sinks:
            s.close()
        raise
    return sinks
