"""A real single-node Apache Kafka 4.x (KRaft, broker and controller in one JVM), from Maven Central.

`kafka.Kafka` and `kafka.tools.StorageTool` are in `org.apache.kafka:kafka_2.13`; Maven
brings its dependencies. Kafka's jars log through SLF4J 1.7 (slf4j-api 1.7.36 in its pom),
so the backend is Log4j 2's SLF4J 1.x binding (`log4j-slf4j-impl`), as in Kafka's own
distribution, with a small properties config that writes `ROOT/logs/server.log`.

The storage is formatted once (`StorageTool format --standalone -t <cluster id>`), the
settings are those of Kafka's config/server.properties for combined mode with replication
factors 1 (offsets, transactions, share-group state), and `group.initial.rebalance.delay.ms=0`
so a consumer group forms at once. Listeners are on loopback only; SIGTERM is a controlled
shutdown (~2 s).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warehouse.errors import ConfigError
from warehouse.servers import maven
from warehouse.servers.process import Java, LocalServer, ServerProcess, find_java, log_tail, port_answers, stable_ports

KAFKA_VERSION = "4.4.0"  # newest 4.x on Maven Central when pinned
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.26.1"
KAFKA_ARTIFACTS = (
    maven.Artifact("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
    maven.Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    maven.Artifact("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
)
KAFKA_MIN_JAVA = 17  # Kafka 4.x brokers need Java 17+
PORTS = ("broker", "controller")
# kafka-run-class.sh's performance options; a smaller starting heap than its -Xms1G for a dev box
JVM_ARGS = ["-Xms128m", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true"]  # fmt: skip


def kafka_uuid() -> str:
    """A cluster id as `kafka-storage.sh random-uuid` prints it: 16 random bytes, URL-safe base64,
    never starting with '-' (Kafka's Uuid.randomUuid() redraws those: the tools' argument parser
    would take the id for an option — measured: "argument --cluster-id/-t: expected one argument")."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("wh.servers.kafka.librdkafka")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """A metadata request through confluent-kafka's AdminClient lists at least one broker."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _quiet_logger()}
    admin = AdminClient(conf)
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


class LocalKafkaServer(LocalServer):
    """`with LocalKafkaServer(dir) as k: k.bootstrap` — fetch the jars, format once, start, stop.

    `root` holds server.properties, log4j2.properties, data/ (the log dirs and KRaft metadata)
    and logs/. Data survives restarts; ports not given are reused from the last run when free.
    """

    def __init__(self, root: Path, *, port: int | None = None, controller_port: int | None = None,
                 java_home: Path | None = None, progress: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.root = Path(root).resolve()
        self._given = {"broker": port, "controller": controller_port}
        self._java_home = java_home
        self.progress = progress
        self.ports: dict[str, int] = {}
        self.process = ServerProcess(f"Kafka {KAFKA_VERSION}", self.root / "logs" / "stdout.log")
        self.jars: maven.Jars | None = None
        self.java: Java | None = None

    @property
    def port(self) -> int:
        return self.ports["broker"]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    @property
    def server_log(self) -> Path:
        return self.root / "logs" / "server.log"

    def env(self) -> dict[str, str]:
        return {"WH_KAFKA_BOOTSTRAP": self.bootstrap}

    def fetch(self) -> maven.Jars:
        self.jars = maven.resolve(KAFKA_ARTIFACTS, progress=self.progress)
        return self.jars

    def _write_config(self) -> None:
        b, c = self.ports["broker"], self.ports["controller"]
        data = self.root / "data"
        (self.root / "server.properties").write_text(
            "# written by wh (warehouse/servers/kafka.py) at every start\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{c}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "controller.listener.names=CONTROLLER\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={data}\n"
            "num.partitions=4\n"  # as the embedded mock broker auto-creates them (Kafka's sample: 1)
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
        )
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (self.root / "log4j2.properties").write_text(
            "status = warn\n"
            "shutdownHook = disable\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {logs / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
        )

    def _java_cmd(self, main: str, *args: str, heap: list[str] | None = None) -> list[str]:
        assert self.java is not None and self.jars is not None
        return [str(self.java.executable), *(heap or []),
                f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.root / 'logs'}", "-cp", self.jars.classpath, main, *args]  # fmt: skip

    def _format(self) -> None:
        """Format the log dir once: a KRaft node refuses to start on an unformatted one."""
        if (self.root / "data" / "meta.properties").is_file():
            return
        id_file = self.root / "cluster.id"
        if not id_file.is_file() or id_file.read_text().startswith("-"):
            id_file.write_text(kafka_uuid() + "\n")
        cluster_id = id_file.read_text().strip()
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}",
                             "-c", str(self.root / "server.properties"), heap=["-Xmx256m"])  # fmt: skip
        r = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=120)
        (self.root / "logs" / "format.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise ConfigError(f"formatting Kafka's storage failed:\n{(r.stderr or r.stdout)[-2000:]}")

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Format if needed, spawn the broker and return at once (call from the main thread:
        the child's parent-death signal fires when the *thread* that spawned it ends)."""
        self.java = find_java(KAFKA_MIN_JAVA, env_var="WH_KAFKA_JAVA_HOME", what=f"Kafka {KAFKA_VERSION}",
                              home=self._java_home)  # fmt: skip
        if self.jars is None:
            self.fetch()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ports = stable_ports(self.root / "wh-ports.json", PORTS, self._given)
        self._write_config()
        self._format()
        if self.progress:
            self.progress(f"starting Kafka {KAFKA_VERSION} (KRaft, Java {self.java.major}) on {self.bootstrap}")
        self.process.spawn(self._java_cmd("kafka.Kafka", str(self.root / "server.properties"), heap=JVM_ARGS),
                           cwd=self.root)  # fmt: skip

    def _answers(self) -> bool:
        return port_answers(self.port) and broker_answers(self.bootstrap, timeout=5.0)

    def wait_ready(self, timeout: float = 90.0, cancel: threading.Event | None = None) -> bool:
        try:
            return self.process.wait_until(self._answers, timeout=timeout, what=self.bootstrap, cancel=cancel)
        except ConfigError as exc:
            raise ConfigError(f"{exc}\n{self.server_log} ends:\n{log_tail(self.server_log)}") from None
