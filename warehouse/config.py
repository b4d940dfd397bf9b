"""Settings from the environment (or `.env`), one place, typed.

    WH_HOME                   data directory of the embedded engines (default ./wh_data)
    WH_CLICKHOUSE_URL         http(s)://user:password@host:port/ — use a ClickHouse server
                              (percent-encode / ? # @ in the password, or leave the password
                              out of the URL and set WH_CLICKHOUSE_PASSWORD)
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

Bad values raise `ConfigError` whose message never holds a secret: `get_settings()` reports
pydantic's errors without their input values, and WH_CLICKHOUSE_URL is parsed in one place
(`parse_clickhouse_url`), every message showing it through `redact_url` (user and password
replaced by `***`, worked out from the raw text, not from a parser that can be fooled by a
`/`, `#` or `@` in the password).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from warehouse.errors import ConfigError

_DEFAULT_PORTS = {"http": 8123, "https": 8443}
# A host name, an IPv4 address or a bracketed IPv6 address; nothing else is ever echoed.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]")
_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_URL_FORMAT = "expected http(s)://user:password@host:port/"


class ClickHouseAddress(BaseModel):
    """Where and as whom to connect to a ClickHouse server; `where` is safe to print."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["http", "https"]
    host: str
    port: int
    username: str
    password: SecretStr
    database: str | None = None

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def where(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/{self.database or ''}"


def redact_url(raw: str) -> str:
    """`raw` fit for a message: user and password become `***`, only a plain host[:port] is kept.

    Computed from the text itself: everything between `//` (or the start) and the *last*
    `@` is hidden, so a password holding `/`, `?`, `#`, `@`, `:` or spaces never shows; a path,
    query or fragment is never shown (an unencoded `/` or `#` in a password lands there), and
    without an `@` the authority shows only when it is a plain host with a numeric port.
    """
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://", raw)
    scheme = m.group(0) if m else ""
    rest = raw[len(scheme) :]
    at = rest.rfind("@")
    authority = re.split(r"[/?#\\]", rest[at + 1 :], maxsplit=1)[0]
    safe = re.fullmatch(rf"(?:{_HOST.pattern})(?::\d{{1,5}})?", authority) is not None
    return scheme + ("***@" if at >= 0 else "") + (authority if safe else "***")


def parse_clickhouse_url(raw: str, *, user: str = "default", password: SecretStr | None = None) -> ClickHouseAddress:
    """WH_CLICKHOUSE_URL as connection parameters; `ConfigError` (redacted) if it is not one.

    The URL's user and password win; without them, `user` / `password` (WH_CLICKHOUSE_USER /
    WH_CLICKHOUSE_PASSWORD) apply. Percent-encoded characters in the user and password are
    decoded (`%2F` → `/`).
    """

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"WH_CLICKHOUSE_URL {redact_url(raw)} {reason}; {_URL_FORMAT}")

    if any(c.isspace() or not c.isprintable() for c in raw):
        raise bad("contains spaces or control characters (percent-encode them in the password)")
    if not re.match(r"(?i)https?://", raw):
        raise bad("needs a scheme: http:// or https:// in front")
    userinfo_text = raw.partition("//")[2].rpartition("@")[0]
    if re.search(r"[/?#]", userinfo_text):
        raise bad("has a '/', '?' or '#' in the user or password: percent-encode it (%2F, %3F, %23) "
                  "or set the password in WH_CLICKHOUSE_PASSWORD")  # fmt: skip
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:  # its message can quote part of the URL: never shown
        raise bad("does not parse as a URL (is the port a number from 1 to 65535?)") from None
    if parts.query or parts.fragment:
        raise bad("has a query string or fragment (not supported)")
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host = hostport if hostport.endswith("]") else hostport.rsplit(":", 1)[0]
    if not _HOST.fullmatch(host):
        raise bad("has no valid host name")
    if port is None and hostport != host:
        raise bad("has an empty port")
    if port == 0:
        raise bad("has port 0 (use 1 to 65535)")
    database = parts.path.strip("/") or None
    if database is not None and not _DATABASE.fullmatch(database):
        raise bad("has a path that is not a database name")
    scheme = parts.scheme.lower()
    if at:
        name, colon, secret = userinfo.partition(":")
        user = unquote(name) or user
        if colon:
            password = SecretStr(unquote(secret))
    return ClickHouseAddress(
        scheme="https" if scheme == "https" else "http",
        host=host.lower(),
        port=port or _DEFAULT_PORTS[scheme],
        username=user,
        password=password if password is not None else SecretStr(""),
        database=database,
    )


class ClickHouseSettings(BaseSettings):
    """WH_CLICKHOUSE_*: a ClickHouse server — WH_CLICKHOUSE_URL, or HOST/PORT/USER/PASSWORD/SECURE
    field by field; neither set: the embedded engine (chdb) under WH_HOME."""

    model_config = SettingsConfigDict(env_prefix="WH_CLICKHOUSE_", env_file=".env", extra="ignore")

    url: SecretStr | None = None
    host: str | None = None
    port: int = 8123
    user: str = "default"
    password: SecretStr = SecretStr("")
    secure: bool = False
    # A cluster (ddl/clickhouse_cluster): wh's tables are Distributed over <table>_local on the
    # cluster of this name (the servers' <remote_servers>). WH_CLICKHOUSE_NODES lists every
    # node's HTTP host:port (same scheme, user and password as the address above): wh then
    # applies DDL and partition swaps node by node — a cluster without Keeper, shards without
    # replicas. Without it: ON CLUSTER statements and ReplicatedMergeTree (Keeper required).
    cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    nodes: str | None = None

    @property
    def is_server(self) -> bool:
        return self.url is not None or self.host is not None

    def node_addresses(self) -> list[ClickHouseAddress]:
        """WH_CLICKHOUSE_NODES as addresses (the main address's scheme and login), or []."""
        main = self.address()
        if not self.nodes:
            return []
        if main is None or self.cluster is None:
            raise ConfigError("WH_CLICKHOUSE_NODES lists a cluster's nodes: set WH_CLICKHOUSE_CLUSTER and "
                              "WH_CLICKHOUSE_URL (or _HOST) too")  # fmt: skip
        out = []
        for item in (x.strip() for x in self.nodes.split(",")):
            host, _, port = item.rpartition(":")
            if not _HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
                shown = item if re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,255}", item) else "***"
                raise ConfigError(f"WH_CLICKHOUSE_NODES: {shown!r} is not HOST:PORT (the nodes' HTTP ports, "
                                  "comma-separated; the login is WH_CLICKHOUSE_URL's)")  # fmt: skip
            out.append(main.model_copy(update={"host": host.lower(), "port": int(port)}))
        return out

    def address(self) -> ClickHouseAddress | None:
        """Connection parameters of the configured server (None: local mode). `ConfigError`
        when WH_CLICKHOUSE_URL / WH_CLICKHOUSE_HOST is not usable; never with the password."""
        if self.url is not None:
            return parse_clickhouse_url(self.url.get_secret_value(), user=self.user, password=self.password)
        if self.host is not None:
            host = self.host
            if not _HOST.fullmatch(host):
                shown = host if re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,255}", host) else "***"
                raise ConfigError(f"WH_CLICKHOUSE_HOST {shown} is not a host name or IP address "
                                  "(put the user and password in WH_CLICKHOUSE_USER / WH_CLICKHOUSE_PASSWORD)")  # fmt: skip
            if not 0 < self.port < 65536:
                raise ConfigError(f"WH_CLICKHOUSE_PORT {self.port} is not a port (1 to 65535)")
            return ClickHouseAddress(scheme="https" if self.secure else "http", host=host.lower(), port=self.port,
                                     username=self.user, password=self.password)  # fmt: skip
        return None


class KafkaSettings(BaseSettings):
    """WH_KAFKA_*: the cluster (default: the address `wh broker` left in WH_HOME), topic, group,
    credentials for a secured one, and WH_KAFKA_SESSION_TIMEOUT_MS — how long the group waits
    for a consumer that stopped answering (a SIGKILLed one) before its partitions move to the
    others (librdkafka's 45 s by default; the broker allows 6,000 to 300,000)."""

    model_config = SettingsConfigDict(env_prefix="WH_KAFKA_", env_file=".env", extra="ignore")

    bootstrap: str | None = None
    topic: str = "ticks"
    group: str = "wh-ingest"
    session_timeout_ms: int = Field(default=45_000, ge=1_000, le=3_600_000)
    username: str | None = None
    password: SecretStr | None = None
    security_protocol: str | None = None
    sasl_mechanism: str | None = None

    def librdkafka(self) -> dict[str, str]:
        """librdkafka settings for the configured cluster (secrets included: never log this)."""
        conf: dict[str, str] = {}
        if self.security_protocol:
            conf["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.username:
            conf["sasl.username"] = self.username
        if self.password is not None:
            conf["sasl.password"] = self.password.get_secret_value()
        return conf


class WebhookSettings(BaseSettings):
    """`wh webhooks serve`: WH_WEBHOOK_SECRET (the HMAC key the venue signs with; never
    printed), WH_WEBHOOK_TOPIC (where accepted events go, default wh.order-events),
    WH_WEBHOOK_WINDOW_S (how far a timestamp may be from this clock, default 300 s)."""

    model_config = SettingsConfigDict(env_prefix="WH_WEBHOOK_", env_file=".env", extra="ignore")

    secret: SecretStr | None = None
    topic: str = Field(default="wh.order-events", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    window_s: float = Field(default=300.0, gt=0, le=86_400)


class WatchdogSettings(BaseSettings):
    """The simulator's statistical watchdog (warehouse/sim/watchdog.py, Dagster's `sim_watchdog`
    sensor): a running replay counts each trader's orders and fills per bucket of `bucket_s`
    seconds of event time; the newest bucket trips the trader's kill switch when it passes both
    mean + k · max(std, √mean, 1) of up to `history` buckets before it (at least `min_buckets`
    of them) and `floor`. WH_WATCHDOG_BUCKET_S, _K, _HISTORY, _MIN_BUCKETS, _FLOOR."""

    model_config = SettingsConfigDict(env_prefix="WH_WATCHDOG_", env_file=".env", extra="ignore")

    bucket_s: int = Field(default=60, gt=0)
    k: float = Field(default=6.0, gt=0)
    history: int = Field(default=60, ge=2)
    min_buckets: int = Field(default=10, ge=2)
    floor: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _history_holds_min_buckets(self) -> WatchdogSettings:
        if self.min_buckets > self.history:
            raise ValueError(f"min_buckets ({self.min_buckets}) must not exceed history ({self.history})")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WH_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("wh_data"))
    clickhouse: ClickHouseSettings = Field(default_factory=lambda: ClickHouseSettings())
    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())
    watchdog: WatchdogSettings = Field(default_factory=lambda: WatchdogSettings())
    webhook: WebhookSettings = Field(default_factory=lambda: WebhookSettings())
    batch_rows: int = Field(default=50_000, gt=0)
    batch_seconds: float = Field(default=2.0, gt=0)
    lock_wait_seconds: float = Field(default=10.0, ge=0)
    # DuckDB buffer pool of a replay: bounds what a long replay caches of the file it reads
    replay_memory_limit: str = Field(default="32MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$")
    # Real third-party sample files (Tardis CSV), never copied into the repository: read by
    # `wh demo` and the tests' `tardis` fixture; default ../shared/data beside the repo root.
    samples_dir: Path = Field(default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    # where ddl/, queries/ and pipelines/ are (a checkout; default: beside this package)
    project_root: Path | None = None
    # `wh servers`: the jar cache (WH_CACHE_DIR, default ~/.cache/wh) and Maven (WH_MVN, default
    # `mvn` on PATH); the JDKs are found the JDK's way (WH_QUESTDB_JAVA_HOME / JAVA_HOME, PATH)
    cache_dir: Path | None = None
    mvn: str | None = None
    # Dagster (`wh ui`, warehouse/defs): the instance folder (WH_DAGSTER_HOME, default the
    # checkout's dagster_home/), the first day of the daily partitions, the blocking reject
    # rate of a day's import
    dagster_home: Path | None = None
    dagster_start: str = Field(default="2020-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$")
    max_reject_rate: float = Field(default=0.05, ge=0, le=1)
    # `wh query zscore BTC`: when an asset names several instruments, the one quoted in this
    # asset (e.g. USDT) is meant; unset, the choices are listed
    preferred_quote: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{2,10}$")
    # test-only: widen the window of `wh ingest --debug-commit-before-write` (the negative control)
    debug_delay_after_commit: float = Field(default=0.0, ge=0)

    @property
    def duckdb_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def chdb_path(self) -> Path:
        return self.home / "clickhouse"

    @property
    def clickhouse_is_server(self) -> bool:
        return self.clickhouse.is_server

    @property
    def clickhouse_server_file(self) -> Path:
        """URL of the local ClickHouse server a running `wh ingest` started (local mode)."""
        return self.home / "clickhouse.url"

    @property
    def dagster_instance(self) -> Path:
        """DAGSTER_HOME of `wh ui` and of the events `wh ingest` reports."""
        if self.dagster_home is not None:
            return self.dagster_home
        return (self.project_root or Path(__file__).resolve().parents[1]) / "dagster_home"

    @property
    def dagster_ui_file(self) -> Path:
        """Written by a running `wh ui` (its URL and instance): `wh ingest` then reports batches."""
        return self.home / "dagster-ui.json"

    @property
    def clickhouse_secret_file(self) -> Path:
        """Passwords of that server's users (mode 0600; JSON; see warehouse/sql/chserver.py)."""
        return self.home / "clickhouse.secret"

    @property
    def tardis_samples(self) -> list[Path]:
        """The Tardis sample files (`tardis_*.csv`) in samples_dir; none when it is absent."""
        return sorted(self.samples_dir.glob("tardis_*.csv")) if self.samples_dir.is_dir() else []

    @property
    def broker_file(self) -> Path:
        """Where `wh broker` writes its bootstrap address for the other commands."""
        return self.home / "broker.addr"

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings for the configured cluster (secrets included: never log this)."""
        return self.kafka.librdkafka()

    def clickhouse_address(self) -> ClickHouseAddress | None:
        """Connection parameters of the configured ClickHouse server (None: local mode)."""
        return self.clickhouse.address()

    def clickhouse_where(self) -> str:
        """Where ClickHouse lives, safe to print (no password, even when the address is bad)."""
        try:
            address = self.clickhouse_address()
        except ConfigError:
            if self.clickhouse.url is not None:
                return redact_url(self.clickhouse.url.get_secret_value())
            return "(invalid WH_CLICKHOUSE_HOST)"
        if address is not None:
            return address.where
        return f"chdb://{self.chdb_path.resolve()} (embedded)"

    def check(self) -> Settings:
        """Fail now, with a redacted ConfigError, on values that cannot work (the ClickHouse
        address, a Kafka bootstrap string holding credentials)."""
        self.clickhouse.address()
        self.clickhouse.node_addresses()
        if self.clickhouse.cluster is not None and not self.clickhouse.is_server:
            raise ConfigError("WH_CLICKHOUSE_CLUSTER names a cluster of ClickHouse servers: set WH_CLICKHOUSE_URL "
                              "to one of its nodes (the embedded engine is one node)")  # fmt: skip
        if self.kafka.bootstrap is not None:
            check_bootstrap(self.kafka.bootstrap, "WH_KAFKA_BOOTSTRAP")
        return self


def check_bootstrap(bootstrap: str, source: str = "--bootstrap") -> str:
    """A Kafka bootstrap list (host:port[,host:port…], optional PROTOCOL:// prefixes) without
    credentials: librdkafka would log the whole string, so a user:password@ in it is refused
    (use WH_KAFKA_USERNAME / WH_KAFKA_PASSWORD) and the message shows only the hosts."""
    entries = bootstrap.split(",")
    if any("@" in e or any(c.isspace() or not c.isprintable() for c in e) for e in entries):
        shown = ",".join(redact_url(e.strip()) for e in entries)
        raise ConfigError(f"{source} {shown}: credentials do not belong in the bootstrap list; "
                          "set WH_KAFKA_USERNAME / WH_KAFKA_PASSWORD (and WH_KAFKA_SECURITY_PROTOCOL)")  # fmt: skip
    return bootstrap


def get_settings() -> Settings:
    """Settings from the environment, checked; `ConfigError` (no input values in it) if bad."""
    try:
        return Settings().check()
    except ValidationError as exc:
        # pydantic's message shows each bad input value (`input_value=…`): a password set in
        # the wrong variable would print. Keep the field names and reasons only, and build the
        # error outside the `except` so the original is not chained to it either.
        prefix = {"ClickHouseSettings": "WH_CLICKHOUSE_", "KafkaSettings": "WH_KAFKA_",
                  "WatchdogSettings": "WH_WATCHDOG_", "WebhookSettings": "WH_WEBHOOK_"}.get(exc.title, "WH_")  # fmt: skip
        problems = [
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
    raise ConfigError("bad settings: " + "; ".join(problems))


# -- QuestDB (hot tier) -------------------------------------------------------------------
# QDB_CLIENT_CONF is the official client's own variable (`http::addr=host:port;` plus
# username=/password= or token=, tls_* for https::); wh reads it for the ILP sink and derives
# the HTTP /exec address of the engine adapter from it. It may hold a password: SecretStr,
# and every message shows only `questdb_where` (scheme, host, port).


class QuestDBAddress(BaseModel):
    """The parts of QDB_CLIENT_CONF the /exec adapter needs; `where` is safe to print."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["http", "https"]
    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    tls_verify: bool = True
    tls_roots: str | None = None
    conf: SecretStr  # the whole string, for questdb.Sender.from_conf

    @property
    def where(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.scheme}://{host}:{self.port}"


def split_client_conf(raw: str) -> tuple[str, list[tuple[str, str]]]:
    """`schema::k=v;k=v;` → (schema, [(k, v), …]); `;;` inside a value is a literal `;` (the
    client's grammar). ConfigError (no value shown) when it does not parse."""
    schema, sep, rest = raw.strip().partition("::")
    if not sep or not re.fullmatch(r"[a-z]+", schema):
        raise ConfigError("QDB_CLIENT_CONF does not start with a protocol such as http:: "
                          "(expected http::addr=HOST:PORT; — `wh servers` prints one)")  # fmt: skip
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            if rest[i:].strip():
                raise ConfigError(f"QDB_CLIENT_CONF: a setting without '=' after {schema}:: (expected key=value;)")
            break
        key = rest[i:eq].strip()
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise ConfigError(f"QDB_CLIENT_CONF: {key[:40]!r} is not a setting name")
        value, j = [], eq + 1
        while j < len(rest):
            if rest[j] == ";":
                if rest[j + 1 : j + 2] == ";":
                    value.append(";")
                    j += 2
                    continue
                break
            value.append(rest[j])
            j += 1
        pairs.append((key, "".join(value)))
        i = j + 1
    return schema, pairs


def join_client_conf(schema: str, pairs: list[tuple[str, str]]) -> str:
    return f"{schema}::" + "".join(f"{k}={v.replace(';', ';;')};" for k, v in pairs)


def parse_questdb_conf(raw: str) -> QuestDBAddress:
    schema, pairs = split_client_conf(raw)
    if schema in ("tcp", "tcps"):
        raise ConfigError("QDB_CLIENT_CONF uses ILP over TCP, which reports no errors (the server only closes the "
                          "socket): use http::addr=HOST:PORT; (or https::) so refused rows can be told apart")  # fmt: skip
    if schema not in ("http", "https"):
        raise ConfigError(f"QDB_CLIENT_CONF: protocol {schema}:: is not supported by wh; use http:: or https::")
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"QDB_CLIENT_CONF sets {', '.join(twice)} twice")
    conf = dict(pairs)
    addr = conf.get("addr", "")
    m = re.fullmatch(rf"({_HOST.pattern})(?::(\d{{1,5}}))?", addr)
    if m is None:
        raise ConfigError(f"QDB_CLIENT_CONF has no valid addr=HOST:PORT (addr={redact_url(addr)})")
    port = int(m.group(2) or 9000)
    if not 0 < port < 65536:
        raise ConfigError(f"QDB_CLIENT_CONF addr port {port} is not a port (1 to 65535)")
    return QuestDBAddress(
        scheme="https" if schema == "https" else "http",
        host=m.group(1).strip("[]").lower(),
        port=port,
        username=conf.get("username"),
        password=SecretStr(conf["password"]) if "password" in conf else None,
        token=SecretStr(conf["token"]) if "token" in conf else None,
        tls_verify=conf.get("tls_verify", "on") != "unsafe_off",
        tls_roots=conf.get("tls_roots"),
        conf=SecretStr(raw.strip()),
    )


class QuestDBSettings(BaseSettings):
    """QDB_CLIENT_CONF, plus WH_QUESTDB_TIMEOUT (seconds per /exec request, default 30) and
    WH_QUESTDB_WAL_WAIT (seconds `wait_applied` waits for WAL apply, default 60).

    `wh sql --engine questdb` runs as QuestDB's read-only PG-wire user: WH_QUESTDB_PG (HOST:PORT),
    WH_QUESTDB_READER_USER (default wh_reader) and WH_QUESTDB_READER_PASSWORD — the server's
    `pg.readonly.user.enabled`/`pg.readonly.user`/`pg.readonly.password` (`wh servers` and
    docker-compose.yml set them)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    client_conf: SecretStr | None = Field(default=None, validation_alias="QDB_CLIENT_CONF")
    timeout: float = Field(default=30.0, gt=0, validation_alias="WH_QUESTDB_TIMEOUT")
    wal_wait: float = Field(default=60.0, gt=0, validation_alias="WH_QUESTDB_WAL_WAIT")
    pg: str | None = Field(default=None, validation_alias="WH_QUESTDB_PG")
    reader_user: str = Field(default="wh_reader", min_length=1, validation_alias="WH_QUESTDB_READER_USER")
    reader_password: SecretStr | None = Field(default=None, validation_alias="WH_QUESTDB_READER_PASSWORD")

    def reader(self) -> tuple[str, int, str, str]:
        """(host, port, user, password) of the read-only PG-wire user, or ConfigError."""
        password = self.reader_password.get_secret_value() if self.reader_password is not None else ""
        if not self.pg or not password:
            missing = " and ".join(n for n, v in (("WH_QUESTDB_PG", self.pg), ("WH_QUESTDB_READER_PASSWORD",
                                                   password)) if not v)  # fmt: skip
            raise ConfigError(f"wh sql --engine questdb runs as QuestDB's read-only PG user: set {missing} "
                              "(the server needs pg.readonly.user.enabled=true with that user and password; "
                              "`wh servers` and docker-compose.yml set both sides)")  # fmt: skip
        host, _, port = self.pg.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"WH_QUESTDB_PG must be HOST:PORT, not {self.pg!r}")
        return host, int(port), self.reader_user, password

    def address(self) -> QuestDBAddress:
        if self.client_conf is None:
            raise ConfigError("QuestDB is not configured: set QDB_CLIENT_CONF=http::addr=HOST:PORT; "
                              "(`wh servers` starts a local QuestDB and prints the line)")  # fmt: skip
        return parse_questdb_conf(self.client_conf.get_secret_value())


def get_questdb_settings() -> QuestDBSettings:
    try:
        return QuestDBSettings()
    except ValidationError as exc:
        problems = [f"{'_'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False, include_context=False)]  # fmt: skip
    raise ConfigError("bad QuestDB settings: " + "; ".join(problems))
