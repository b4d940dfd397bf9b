"""What the Java servers share: finding a Java, free ports, a child that dies with us.

A server runs in its own process group (Ctrl-C in a terminal reaches `wh servers`, which
stops the servers in order, not the JVMs directly) and gets SIGTERM from the kernel when
the process that started it dies, even by SIGKILL — no orphaned JVMs holding ports.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from warehouse.errors import ConfigError, ToolMissing

JVM_DIR = Path("/usr/lib/jvm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """Stop a process started in its own session and everything it started: SIGTERM to the
    group, SIGKILL after `timeout`. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def port_is_free(port: int) -> bool:
    """No socket listens on it. SO_REUSEADDR as the servers bind (Java sets it): a connection of
    the last run still in TIME_WAIT does not make the port taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_answers(port: int, timeout: float = 0.5) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def stable_ports(state_file: Path, names: Iterable[str], given: Mapping[str, int | None]) -> dict[str, int]:
    """Ports by name: given ones, else those of the last run on this data directory when still
    free (addresses stay valid across restarts), else new free ones; saved for the next run."""
    try:
        saved = json.loads(state_file.read_text())
    except (OSError, ValueError):
        saved = {}
    ports: dict[str, int] = {}
    for name in names:
        port = given.get(name)
        if port is None:
            old = saved.get(name)
            port = old if isinstance(old, int) and old not in ports.values() and port_is_free(old) else None
        while port is None or port in ports.values():
            port = free_port()
        ports[name] = port
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(ports) + "\n")
    return ports


def _die_with_parent() -> None:  # pragma: no cover — runs in the child before exec
    """Linux: the server gets SIGTERM when the process that started it dies (even by SIGKILL)."""
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class Java:
    executable: Path
    major: int

    @property
    def home(self) -> Path:
        return self.executable.resolve().parent.parent


@functools.cache
def java_major(executable: str) -> int | None:
    try:
        out = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _candidates(env_var: str, home: Path | None) -> list[str]:
    if home is not None:
        return [str(Path(home) / "bin" / "java")]
    out: list[str] = []
    for var in (env_var, "JAVA_HOME"):
        value = os.environ.get(var)  # env: a JDK is chosen the JDK's way (JAVA_HOME-style variables), not a wh setting
        if value:
            out.append(str(Path(value) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        out.append(on_path)
    if JVM_DIR.is_dir():
        out += sorted(
            (str(p / "bin" / "java") for p in JVM_DIR.iterdir() if (p / "bin" / "java").is_file()), reverse=True
        )
    return list(dict.fromkeys(out))


def find_java(min_major: int, *, env_var: str, what: str, home: Path | None = None) -> Java:
    """`home`'s Java, else the first Java ≥ `min_major` of: $env_var (a JAVA_HOME), $JAVA_HOME,
    `java` on PATH, the JDKs under /usr/lib/jvm (newest first)."""
    seen = []
    for exe in _candidates(env_var, home):
        major = java_major(exe)
        if major is None:
            continue
        seen.append(f"{exe} (Java {major})")
        if major >= min_major:
            return Java(Path(exe), major)
    found = f"found only {', '.join(seen)}" if seen else "found no Java"
    raise ToolMissing(
        f"{what} needs Java {min_major} or newer; {found}. Install a JDK "
        f"(Debian: apt-get install openjdk-{max(min_major, 17)}-jre-headless) or set {env_var} to its home"
    )


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class ServerProcess:
    """One JVM server: started in its own process group, stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.startup_seconds: float | None = None

    def spawn(self, argv: list[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = self.log_path.open("ab")
        try:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )  # fmt: skip
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ConfigError(
                f"{self.name} exited with code {self.proc.returncode}; its log {self.log_path} ends:\n{log_tail(self.log_path)}"
            )

    def wait_until(self, answers: Callable[[], bool], *, timeout: float, what: str,
                   cancel: threading.Event | None = None) -> bool:  # fmt: skip
        """Poll `answers` until True (→ True), the process exits or `timeout` passes (→ stopped,
        ConfigError), or `cancel` is set (→ False: a stop was requested meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if answers():
                if self.started_at is not None:
                    self.startup_seconds = time.monotonic() - self.started_at
                return True
            if cancel is not None and cancel.wait(0.2):
                return False
            if cancel is None:
                time.sleep(0.2)
        self.stop()
        raise ConfigError(f"{self.name} did not answer {what} within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the group (the JVM runs its shutdown hooks), SIGKILL after `timeout`."""
        return None if self.proc is None else stop_group(self.proc, timeout)

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (Linux /proc), for the measurements."""
        if not self.running or self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


class LocalServer:
    """What every local server shares: its ServerProcess (`self.process`), stop, the figures
    the tests and `wh servers` report, and `with` (start on enter, stop on exit)."""

    process: ServerProcess

    def start(self, timeout: float = 90.0) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> int | None:
        return self.process.stop(timeout)

    def env(self) -> dict[str, str]:
        """The environment lines that tell wh (and the tests) where the server is."""
        raise NotImplementedError

    def secret_env(self) -> dict[str, str]:
        """Lines for the env file only (mode 0600), never printed."""
        return {}

    @property
    def startup_seconds(self) -> float | None:
        return self.process.startup_seconds

    def rss_bytes(self) -> int | None:
        return self.process.rss_bytes()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
