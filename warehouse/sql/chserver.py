"""A real ClickHouse server from the chdb wheel, for local multi-process use and tests.

chdb's engine is clickhouse-local; started with a config that names a port and
`SYSTEM START LISTEN HTTP`, it serves HTTP until a line arrives on a FIFO it is reading
(measured recipe, undocumented: pinned to chdb 4.4.0 / chdb-core 26.9.0). Any number of
processes then reach it with clickhouse-connect over HTTP — the same code path as a remote
server. Data lives in `data_dir` and survives restarts.

Access (measured on chdb-core 26.9.0; see `_users_xml`):

- Two users with generated passwords (`ServerCredentials`, written by `wh ingest` to
  $WH_HOME/clickhouse.secret, mode 0600 from creation): `wh_writer` (everything on the `wh`
  database, MergeTree tables) and `wh_reader` (SELECT on `wh`, profile readonly=1). Neither
  has a source privilege, so the table functions file(), url(), remote(), s3(), executable()…
  are refused; chdb's python() table function (which crashes the server) is switched off by a
  setting they cannot change.
- `default`: clickhouse-local's own session always logs in as `default` with an empty
  password from 127.0.0.1 (measured: a `user`/`password` in the config, the environment, or
  the connection string do not change that, and users.xml is read once: no reload, no SQL
  user management). So `default` authenticates against an HTTP endpoint of this process
  (`_StartupGate`) that says yes only until that session is running — before the server
  listens — and no for the rest of the server's life: nobody can log in as `default` over
  HTTP. Its grants are only what the serving session needs (SYSTEM LISTEN, reading the FIFOs).
- Only HTTP listens (no native TCP port). `start()` checks that an unauthenticated query is
  refused before it returns.

Not closable from the config: ClickHouse's scalar `file(path)` function reads any file the
server process can read and no grant governs it in clickhouse-local (measured: wh_reader
without any privilege read /etc/hostname). Only holders of the passwords — the OS user that
runs `wh` and can read those files anyway — can call it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, SecretStr

from warehouse.errors import ConfigError

SUPPORTED_CHDB = "4.4.0"
WRITER = "wh_writer"
READER = "wh_reader"

# `go.fifo` holds the session until the startup gate has closed: only then does it listen.
_SERVE = (
    "import chdb, sys\n"
    "chdb._chdb.query(\"SELECT * FROM file('go.fifo', 'LineAsString'); SYSTEM START LISTEN HTTP; {tcp}"
    "SELECT * FROM file('stop.fifo', 'LineAsString')\", 'TabSeparated', path=sys.argv[1])\n"
)


@dataclass(frozen=True)
class LocalCluster:
    """Servers of one machine as a ClickHouse cluster: every shard one replica, reached over the
    native protocol (`tcp_ports`, one per node, in shard order). The nodes share `secret`, so a
    Distributed query runs on the shards as the user who sent it (wh_reader stays read-only)."""

    name: str
    tcp_ports: tuple[int, ...]
    secret: str

    def xml(self) -> str:
        shards = "".join(f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"
                         for p in self.tcp_ports)  # fmt: skip
        return f"<remote_servers><{self.name}><secret>{self.secret}</secret>{shards}</{self.name}></remote_servers>"


def _die_with_parent() -> None:  # pragma: no cover — runs in the child before exec
    """Linux: the server gets SIGTERM when the process that started it dies (even by SIGKILL)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerCredentials(BaseModel):
    """Passwords of the local server's two users (`SecretStr`: never printed)."""

    model_config = ConfigDict(frozen=True)

    writer: SecretStr
    reader: SecretStr

    @classmethod
    def generate(cls) -> ServerCredentials:
        return cls(writer=SecretStr(secrets.token_urlsafe(32)), reader=SecretStr(secrets.token_urlsafe(32)))

    def login(self, *, read_only: bool) -> tuple[str, SecretStr]:
        return (READER, self.reader) if read_only else (WRITER, self.writer)


def write_private(path: Path, text: str) -> None:
    """Write `path` atomically with mode 0600 from its creation (mkstemp opens O_EXCL, 0600;
    then fsync and rename over the old file): no moment where others could read it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_secret(path: Path, credentials: ServerCredentials) -> None:
    """$WH_HOME/clickhouse.secret: {"wh_writer": …, "wh_reader": …}, mode 0600."""
    write_private(path, json.dumps({WRITER: credentials.writer.get_secret_value(),
                                    READER: credentials.reader.get_secret_value()}) + "\n")  # fmt: skip


def read_secret(path: Path) -> ServerCredentials:
    """The credentials `write_secret` left; `ConfigError` (without the file's content) if unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServerCredentials(writer=SecretStr(data[WRITER]), reader=SecretStr(data[READER]))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    except (ValueError, KeyError, TypeError):
        reason = "not the JSON `wh ingest` writes"
    raise ConfigError(
        f"a local ClickHouse server is running but its credentials cannot be read from {path} ({reason}); "
        "commands must run as the OS user that started `wh ingest`"
    )


def _sha256(secret: SecretStr) -> str:
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()


def _grants(*queries: str) -> str:
    return "<grants>" + "".join(f"<query>{q}</query>" for q in queries) + "</grants>"


# chdb's python() table function reads the server process's Python objects, and crashed it
# when called over HTTP (measured): off, and not changeable by the session.
_NO_PYTHON = ("<allow_python_table_function>0</allow_python_table_function>"
              "<constraints><allow_python_table_function><readonly/></allow_python_table_function>{more}</constraints>")  # fmt: skip
# `wh sql` sets its limits in the query's SETTINGS clause: changeable even under readonly=1
_READER_CHANGEABLE = "".join(
    f"<{name}><changeable_in_readonly/></{name}>"
    for name in ("max_execution_time", "max_result_rows", "result_overflow_mode")
)


def _users_xml(credentials: ServerCredentials, *, cluster: bool = False) -> str:
    loopback = "<networks><ip>127.0.0.1</ip></networks>"
    # a join or IN over two Distributed tables (the ledger queries) is refused by default:
    # GLOBAL runs the inner side once and ships it to the shards — right whatever the sharding
    cluster_profile = "<distributed_product_mode>global</distributed_product_mode>" if cluster else ""
    return (
        "<clickhouse><users>"
        # the serving session (see the module docstring); refused over HTTP by the startup gate
        "<default><http_authentication><server>wh_startup_gate</server><scheme>basic</scheme></http_authentication>"
        f"{loopback}<profile>default</profile><quota>default</quota>"
        + _grants("GRANT SYSTEM LISTEN ON *.*", "GRANT READ ON FILE", "GRANT CREATE TEMPORARY TABLE ON *.*")
        + "</default>"
        f"<{WRITER}><password_sha256_hex>{_sha256(credentials.writer)}</password_sha256_hex>{loopback}"
        "<profile>default</profile><quota>default</quota>"
        + _grants(
            "GRANT ALL ON wh.*",
            "GRANT TABLE ENGINE ON MergeTree",
            "GRANT TABLE ENGINE ON AggregatingMergeTree",  # the instrument catalog
            "GRANT TABLE ENGINE ON ReplacingMergeTree",  # the stored z-scores
            *(["GRANT TABLE ENGINE ON Distributed"] if cluster else []),
        )
        + f"</{WRITER}>"
        f"<{READER}><password_sha256_hex>{_sha256(credentials.reader)}</password_sha256_hex>{loopback}"
        "<profile>wh_reader</profile><quota>default</quota>" + _grants("GRANT SELECT ON wh.*") + f"</{READER}>"
        "</users><profiles>"
        f"<default>{cluster_profile}{_NO_PYTHON.format(more='')}</default>"
        f"<wh_reader><readonly>1</readonly>{cluster_profile}{_NO_PYTHON.format(more=_READER_CHANGEABLE)}</wh_reader>"
        "</profiles><quotas><default/></quotas></clickhouse>\n"
    )


class _StartupGate:
    """HTTP authentication endpoint for the `default` user: yes to clickhouse-local's own
    session while `open`, no to everyone once closed (kept bound and answering until the
    server stops, so no other process can take its port and answer yes)."""

    _DEFAULT_LOGIN = "Basic " + base64.b64encode(b"default:").decode()

    def __init__(self) -> None:
        gate = self
        self.open = True

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = gate.open and self.headers.get("Authorization") == _StartupGate._DEFAULT_LOGIN
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="wh-ch-startup-gate", daemon=True)  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        self.open = False

    def shutdown(self) -> None:
        self.open = False
        self._server.shutdown()
        self._server.server_close()


class LocalClickHouseServer:
    """`with LocalClickHouseServer(dir) as srv: srv.url` — start, wait for /ping, stop.

    `srv.url` holds no credentials; `srv.credentials` are the users' passwords (generated
    unless given) and `srv.dsn(read_only=…)` a URL with them, as a `SecretStr`."""

    def __init__(self, workdir: Path, *, data_dir: Path | None = None, http_port: int | None = None,
                 credentials: ServerCredentials | None = None, cluster: LocalCluster | None = None,
                 tcp_port: int | None = None) -> None:  # fmt: skip
        """With `cluster`, this server is the node listening on `tcp_port` (one of the cluster's
        ports) and wh_writer may create Distributed tables."""
        import chdb

        version = getattr(chdb, "__version__", "?")
        if version != SUPPORTED_CHDB:
            raise ConfigError(
                f"the local ClickHouse server recipe is verified on chdb {SUPPORTED_CHDB}, found {version}"
            )
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.http_port = http_port or free_port()
        self.credentials = credentials or ServerCredentials.generate()
        self.proc: subprocess.Popen[bytes] | None = None
        self._gate: _StartupGate | None = None
        if cluster is not None and tcp_port not in cluster.tcp_ports:
            raise ConfigError("a cluster node listens on one of the cluster's TCP ports")
        self.cluster, self.tcp_port = cluster, tcp_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def dsn(self, *, read_only: bool = False) -> SecretStr:
        user, password = self.credentials.login(read_only=read_only)
        return SecretStr(f"http://{user}:{password.get_secret_value()}@127.0.0.1:{self.http_port}/")

    def start(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)  # the FIFOs and configs: this user only
        self._gate = _StartupGate()
        try:
            write_private(self.workdir / "users.xml", _users_xml(self.credentials, cluster=self.cluster is not None))
            cluster = f"<tcp_port>{self.tcp_port}</tcp_port>{self.cluster.xml()}" if self.cluster is not None else ""
            write_private(
                self.workdir / "clickhouse-local.xml",
                f"<clickhouse><http_port>{self.http_port}</http_port><listen_host>127.0.0.1</listen_host>{cluster}"
                "<users_config>users.xml</users_config><http_authentication_servers><wh_startup_gate>"
                f"<uri>http://127.0.0.1:{self._gate.port}/</uri><connection_timeout_ms>2000</connection_timeout_ms>"
                "<receive_timeout_ms>2000</receive_timeout_ms><send_timeout_ms>2000</send_timeout_ms>"
                "<max_tries>1</max_tries></wh_startup_gate></http_authentication_servers></clickhouse>\n",
            )
            for name in ("go.fifo", "stop.fifo"):
                fifo = self.workdir / name
                if fifo.exists():
                    fifo.unlink()
                os.mkfifo(fifo, 0o600)
            with (self.workdir / "server.log").open("wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", _SERVE.replace("{tcp}", "SYSTEM START LISTEN TCP; " if self.cluster else ""),
                     str(self.data_dir.resolve())],
                    cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )  # fmt: skip
            self._let_it_listen(deadline)
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                        up = r.read().strip() == b"Ok."
                except OSError:
                    up = False
                if up:
                    self._check_no_anonymous_access()
                    return
                time.sleep(0.05)
            raise ConfigError(f"local ClickHouse server did not answer /ping within {timeout:.0f} s")
        except BaseException:
            self.stop()
            raise

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ConfigError(f"local ClickHouse server exited; see {self.workdir / 'server.log'}")

    def _let_it_listen(self, deadline: float) -> None:
        """Wait until the serving session reads go.fifo (it has logged in), close the gate,
        then let it start listening."""
        assert self._gate is not None
        while True:
            self._check_alive()
            try:
                fd = os.open(self.workdir / "go.fifo", os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            if time.monotonic() > deadline:
                raise ConfigError("local ClickHouse server did not start its session in time")
            time.sleep(0.02)
        self._gate.close()
        with os.fdopen(fd, "w") as f:
            f.write("go\n")

    def _check_no_anonymous_access(self) -> None:
        try:
            with urllib.request.urlopen(f"{self.url}/?query=SELECT%201", timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                return
        except OSError as exc:
            raise ConfigError(f"local ClickHouse server: cannot check its access control ({exc})") from exc
        raise ConfigError("local ClickHouse server answered a query without credentials: refusing to serve")

    def stop(self, timeout: float = 15.0) -> None:
        try:
            if self.proc is None or self.proc.poll() is not None:
                return
            if self._gate is not None and self._gate.open:  # never let go: it has written nothing
                self.proc.kill()
                self.proc.wait()
                return
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fd = os.open(self.workdir / "stop.fifo", os.O_WRONLY | os.O_NONBLOCK)
                    with os.fdopen(fd, "w") as f:
                        f.write("stop\n")
                    self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    return
                except OSError as exc:  # ENXIO: not reading the FIFO yet (still starting to listen)
                    if exc.errno != errno.ENXIO or time.monotonic() > deadline or self.proc.poll() is not None:
                        break
                    time.sleep(0.05)
                except subprocess.TimeoutExpired:
                    break
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            if self._gate is not None:
                self._gate.shutdown()
                self._gate = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
