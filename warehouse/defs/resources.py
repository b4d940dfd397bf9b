"""Dagster resources over the project's settings and engines.

The resources carry no secret: passwords, tokens and `QDB_CLIENT_CONF` stay in the
environment (or .env) and are read there by warehouse/config.py when an engine opens, so
nothing secret is in a run's config, the launchpad, logs or metadata. What a resource does
hold is where the warehouse is (`home`, default WH_HOME).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from warehouse.config import Settings, get_settings
from warehouse.sinks import Sink, open_sinks
from warehouse.sql.engines import Engine, open_engine


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse's engines (DuckDB file, ClickHouse embedded or server, QuestDB) and sinks,
    configured by WH_* / QDB_CLIENT_CONF like the `wh` command."""

    home: str | None = None  # default: WH_HOME (wh_data)

    def settings(self) -> Settings:
        s = get_settings()
        return s if self.home is None else s.model_copy(update={"home": Path(self.home)})

    @contextmanager
    def engine(self, name: str, *, read_only: bool = False) -> Iterator[Engine]:
        eng = open_engine(name, self.settings(), read_only=read_only)
        try:
            yield eng
        finally:
            eng.close()

    @contextmanager
    def sinks(self, names: list[str]) -> Iterator[list[Sink]]:
        opened = open_sinks(names, self.settings())
        try:
            yield opened
        finally:
            for s in opened:
                s.close()


class KafkaResource(dg.ConfigurableResource):
    """Where the cluster is (WH_KAFKA_BOOTSTRAP or the address `wh broker` left in WH_HOME);
    SASL credentials stay in the environment."""

    def bootstrap(self, settings: Settings) -> str:
        from warehouse.ingest.kafka import bootstrap_servers

        return bootstrap_servers(settings)
