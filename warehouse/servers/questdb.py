"""A real QuestDB server from Maven Central (`org.questdb:questdb`), on free loopback ports.

The jar is the whole server, with its native libraries for linux-x86-64 inside. It is
started the way QuestDB's own no-JRE launcher does (`-p questdb.jar -m
io.questdb/io.questdb.ServerMain -d ROOT`); `QDB_<KEY>` environment variables override
ROOT/conf/server.conf, which the server writes on first start. Ports: HTTP (/exec, ILP over
HTTP, web console), PostgreSQL wire, ILP over TCP, and the "min" HTTP server (/status
health). UDP ILP and telemetry are off. SIGTERM shuts it down cleanly (~2 s).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warehouse.errors import ConfigError, SinkError, WarehouseError
from warehouse.servers import maven
from warehouse.servers.process import Java, LocalServer, ServerProcess, find_java, stable_ports

# The newest org.questdb:questdb on Maven Central when pinned (9.4.x/10.x are not published there).
QUESTDB_VERSION = "9.3.4"
QUESTDB_ARTIFACT = maven.Artifact("org.questdb", "questdb", QUESTDB_VERSION)
# 9.3.4 is built for Java 17 (its pom: javac.target 17) and runs on 17 and 25 here.
QUESTDB_MIN_JAVA = 17
PORTS = ("http", "pg", "ilp_tcp", "health")


def questdb_java(java_home: Path | None = None) -> Java:
    return find_java(QUESTDB_MIN_JAVA, env_var="WH_QUESTDB_JAVA_HOME", what=f"QuestDB {QUESTDB_VERSION}",
                     home=java_home)  # fmt: skip


def jvm_args(java: Java) -> list[str]:
    """QuestDB's launcher flags; the Unsafe one exists only from Java 23 on (17 rejects it)."""
    args = ["-Dcontainerized=false", "-ea", "-Dnoebug", "-XX:+UseParallelGC"]
    if java.major >= 23:
        args.append("--sun-misc-unsafe-memory-access=allow")
    args += [
        "--enable-native-access=io.questdb",
        "--add-opens=java.base/java.lang=io.questdb",
        "--add-opens=java.base/java.lang.reflect=io.questdb",
        "--add-opens=java.base/java.nio=io.questdb",
        "--add-opens=java.base/java.time.zone=io.questdb",
        "--add-exports=java.base/jdk.internal.vm=io.questdb",
    ]
    return args


READER_USER = "wh_reader"


class LocalQuestDBServer(LocalServer):
    """`with LocalQuestDBServer(dir) as q: q.client_conf` — fetch the jar, start, wait for /exec, stop.

    `root` is QuestDB's own root (conf/, db/, log/); the JVM's output goes to `root/server.log`.
    Ports not given are those of the last run on this root if still free, else new free ones.
    """

    def __init__(self, root: Path, *, http_port: int | None = None, pg_port: int | None = None,
                 ilp_tcp_port: int | None = None, health_port: int | None = None, java_home: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.root = Path(root).resolve()
        self._given = {"http": http_port, "pg": pg_port, "ilp_tcp": ilp_tcp_port, "health": health_port}
        self._java_home = java_home
        self.progress = progress
        self.ports: dict[str, int] = {}
        self.process = ServerProcess(f"QuestDB {QUESTDB_VERSION}", self.root / "server.log")
        self.jars: maven.Jars | None = None
        self.java: Java | None = None
        # `wh sql --engine questdb` connects as this read-only PG user; new on every start
        self.reader_password = secrets.token_urlsafe(24)

    # addresses -------------------------------------------------------------------------
    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def pg_address(self) -> str:
        return f"127.0.0.1:{self.ports['pg']}"

    @property
    def ilp_tcp_address(self) -> str:
        return f"127.0.0.1:{self.ports['ilp_tcp']}"

    @property
    def client_conf(self) -> str:
        """For `questdb.Sender.from_conf` (ILP over HTTP: errors are reported, unlike TCP)."""
        return f"http::addr=127.0.0.1:{self.ports['http']};"

    def env(self) -> dict[str, str]:
        return {"QDB_CLIENT_CONF": self.client_conf, "WH_QUESTDB_HTTP": self.http_url, "WH_QUESTDB_PG": self.pg_address,
                "WH_QUESTDB_READER_USER": READER_USER}  # fmt: skip

    def secret_env(self) -> dict[str, str]:
        """For the env file only (mode 0600), never printed: the read-only user's password."""
        return {"WH_QUESTDB_READER_PASSWORD": self.reader_password}

    # lifecycle -------------------------------------------------------------------------
    def fetch(self) -> maven.Jars:
        self.jars = maven.resolve([QUESTDB_ARTIFACT], progress=self.progress)
        return self.jars

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Spawn the server and return at once (call from the main thread: the child's
        parent-death signal fires when the *thread* that spawned it ends)."""
        self.java = questdb_java(self._java_home)
        jars = self.jars or self.fetch()
        jar = next((p for p in jars.jars if p.name == f"questdb-{QUESTDB_VERSION}.jar"), None)
        if jar is None:
            raise ConfigError(
                f"questdb-{QUESTDB_VERSION}.jar missing from {jars.directory}; delete that folder to refetch"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.ports = stable_ports(self.root / "wh-ports.json", PORTS, self._given)
        # QDB_<KEY> variables override server.conf (a developer's own ones pass through);
        # QDB_CLIENT_CONF is the Python client's, not a server key
        env = {k: v for k, v in os.environ.items() if k != "QDB_CLIENT_CONF"}
        env |= {
            "QDB_HTTP_BIND_TO": f"127.0.0.1:{self.ports['http']}",
            "QDB_PG_NET_BIND_TO": f"127.0.0.1:{self.ports['pg']}",
            "QDB_LINE_TCP_NET_BIND_TO": f"127.0.0.1:{self.ports['ilp_tcp']}",
            "QDB_HTTP_MIN_NET_BIND_TO": f"127.0.0.1:{self.ports['health']}",
            "QDB_LINE_UDP_ENABLED": "false",  # else it binds UDP 0.0.0.0:9009
            "QDB_TELEMETRY_ENABLED": "false",
            # wh's tables come from ddl/questdb/ (`wh migrate --engine questdb`), never from ILP:
            # a misspelt or dropped table is an error, not a new empty table
            "QDB_LINE_AUTO_CREATE_NEW_TABLES": "false",
            # analysts' SQL runs as a user QuestDB itself keeps from writing (refusals measured:
            # INSERT, UPDATE, CREATE, DROP, ALTER, TRUNCATE, VACUUM, SNAPSHOT → "Write permission denied")
            "QDB_PG_READONLY_USER_ENABLED": "true",
            "QDB_PG_READONLY_USER": READER_USER,
            "QDB_PG_READONLY_PASSWORD": self.reader_password,
        }
        # wh never uses the PG admin: unless the developer set one, it gets a password no one knows
        env.setdefault("QDB_PG_PASSWORD", secrets.token_urlsafe(24))
        argv = [str(self.java.executable), *jvm_args(self.java), "-p", str(jar),
                "-m", "io.questdb/io.questdb.ServerMain", "-d", str(self.root)]  # fmt: skip
        if self.progress:
            self.progress(f"starting QuestDB {QUESTDB_VERSION} (Java {self.java.major}) on {self.http_url}")
        self.process.spawn(argv, cwd=self.root, env=env)

    def wait_ready(self, timeout: float = 90.0, cancel: threading.Event | None = None) -> bool:
        return self.process.wait_until(self._answers, timeout=timeout, what=f"{self.http_url}/exec", cancel=cancel)

    def _answers(self) -> bool:
        try:
            return self.exec("SELECT 1", timeout=2).get("dataset") == [[1]]
        except (OSError, ValueError, WarehouseError):
            return False

    def exec(self, sql: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """One statement over HTTP /exec; QuestDB's JSON answer. An SQL error → SinkError."""
        url = f"{self.http_url}/exec?{urllib.parse.urlencode({'query': sql})}"
        return http_exec(url, timeout=timeout)


def http_exec(url: str, *, timeout: float = 30.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            message = json.loads(body).get("error", body)
        except ValueError:
            message = body
        raise SinkError("questdb", f"refused the query: {message}") from None
