"""Settings from the environment (or `.env`), one place, typed.

    WH_HOME                   data directory of the embedded engines (default ./wh_data)
    WH_CLICKHOUSE_URL         http(s)://user:password@host:port/ — use a ClickHouse server
    WH_CLICKHOUSE_HOST/PORT/USER/PASSWORD/SECURE   the same, field by field
    WH_BATCH_ROWS             rows per write batch (default 50,000)
    WH_BATCH_SECONDS          ... or this many seconds, whichever first (default 2)
    WH_LOCK_WAIT_SECONDS      how long a command waits for a DuckDB file another process holds (10)
    WH_KAFKA_BOOTSTRAP        host:port of a Kafka cluster (default: `wh broker`'s address file)
    WH_KAFKA_TOPIC / WH_KAFKA_GROUP            default topic "ticks", group "wh-ingest"
    WH_KAFKA_USERNAME/PASSWORD/SECURITY_PROTOCOL/SASL_MECHANISM   for a secured cluster

Without a ClickHouse address, ClickHouse runs embedded (chdb) under $WH_HOME/clickhouse,
reached through the same clickhouse-connect Client API as a server. Passwords are
`SecretStr`: they print as '**********' and never reach logs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WH_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("wh_data"))
    clickhouse_url: SecretStr | None = None
    clickhouse_host: str | None = None
    clickhouse_port: int = 8123
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_secure: bool = False
    batch_rows: int = Field(default=50_000, gt=0)
    batch_seconds: float = Field(default=2.0, gt=0)
    lock_wait_seconds: float = Field(default=10.0, ge=0)
    # DuckDB buffer pool of a replay: bounds what a long replay caches of the file it reads
    replay_memory_limit: str = Field(default="32MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$")
    kafka_bootstrap: str | None = None
    kafka_topic: str = "ticks"
    kafka_group: str = "wh-ingest"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None

    @property
    def duckdb_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def chdb_path(self) -> Path:
        return self.home / "clickhouse"

    @property
    def clickhouse_is_server(self) -> bool:
        return self.clickhouse_url is not None or self.clickhouse_host is not None

    @property
    def clickhouse_server_file(self) -> Path:
        """URL of the local ClickHouse server a running `wh ingest` started (local mode)."""
        return self.home / "clickhouse.url"

    @property
    def broker_file(self) -> Path:
        """Where `wh broker` writes its bootstrap address for the other commands."""
        return self.home / "broker.addr"

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings for the configured cluster (secrets included: never log this)."""
        conf: dict[str, str] = {}
        if self.kafka_security_protocol:
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_username:
            conf["sasl.username"] = self.kafka_username
        if self.kafka_password is not None:
            conf["sasl.password"] = self.kafka_password.get_secret_value()
        return conf

    def clickhouse_where(self) -> str:
        """Where ClickHouse lives, safe to print (no password)."""
        if self.clickhouse_url is not None:
            parts = urlsplit(self.clickhouse_url.get_secret_value())
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        if self.clickhouse_host is not None:
            scheme = "https" if self.clickhouse_secure else "http"
            return f"{scheme}://{self.clickhouse_host}:{self.clickhouse_port}"
        return f"chdb://{self.chdb_path.resolve()} (embedded)"


def get_settings() -> Settings:
    return Settings()
