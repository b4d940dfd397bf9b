"""A real ClickHouse server from the chdb wheel, for local multi-process use and tests.

chdb's engine is clickhouse-local; started with a config that names ports and
`SYSTEM START LISTEN`, it serves HTTP and the native protocol until a line arrives on a
FIFO it is reading (measured recipe, undocumented: pinned to chdb 4.4.0 /
chdb-core 26.9.0). Any number of processes then reach it with clickhouse-connect over
HTTP — the same code path as a remote server. Data lives in `data_dir` and survives
restarts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from warehouse.errors import ConfigError

SUPPORTED_CHDB = "4.4.0"

_SERVE = (
    "import chdb, sys\n"
    "chdb._chdb.query(\"SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    "SELECT * FROM file('stop.fifo', 'LineAsString')\", 'TabSeparated', path=sys.argv[1])\n"
)


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


class LocalClickHouseServer:
    """`with LocalClickHouseServer(dir) as srv: srv.url` — start, wait for /ping, stop."""

    def __init__(self, workdir: Path, *, data_dir: Path | None = None, http_port: int | None = None,
                 tcp_port: int | None = None) -> None:  # fmt: skip
        import chdb

        version = getattr(chdb, "__version__", "?")
        if version != SUPPORTED_CHDB:
            raise ConfigError(f"the local ClickHouse server recipe is verified on chdb {SUPPORTED_CHDB}, found {version}")
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.http_port = http_port or free_port()
        self.tcp_port = tcp_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "clickhouse-local.xml").write_text(
            f"<clickhouse><http_port>{self.http_port}</http_port><tcp_port>{self.tcp_port}</tcp_port>"
            "<listen_host>127.0.0.1</listen_host></clickhouse>\n"
        )
        fifo = self.workdir / "stop.fifo"
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)
        log = (self.workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.data_dir.resolve())],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f"local ClickHouse server exited; see {self.workdir / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.read().strip() == b"Ok.":
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ConfigError(f"local ClickHouse server did not answer /ping within {timeout:.0f} s")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            fd = os.open(self.workdir / "stop.fifo", os.O_WRONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "w") as f:
                f.write("stop\n")
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
