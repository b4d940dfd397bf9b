"""Pinned server jars from Maven Central, resolved once into a cache.

    $WH_CACHE_DIR/jars/<artifact>-<version>/   (WH_CACHE_DIR defaults to ~/.cache/wh)
        *.jar          the artifact and its runtime dependencies, flat
        .complete      the coordinates resolved, written last: a folder without it is unfinished

Maven does the resolving (`mvn dependency:copy-dependencies` over a tiny generated pom in
a temporary folder), so transitive dependencies, checksums and Maven's own repository
(~/.m2, shared with every other Maven build) work as usual. A second call finds
`.complete` and does nothing — it does not even need `mvn`. A folder is published by one
rename, so two processes resolving at once (pytest workers, CI) never see half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from warehouse.errors import ConfigError
from warehouse.servers.process import ToolMissing, find_java

# Maven 3.8's default dependency plugin is 2.8 (2013); pin a current one.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MARKER = ".complete"


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str

    @property
    def coords(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class Jars:
    """A resolved cache folder; `downloaded` is False when it was already complete."""

    directory: Path
    jars: tuple[Path, ...]
    downloaded: bool
    seconds: float

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.jars)

    @property
    def classpath(self) -> str:
        return os.pathsep.join(str(p) for p in self.jars)


def cache_root() -> Path:
    from warehouse.config import get_settings

    base = get_settings().cache_dir  # WH_CACHE_DIR
    return (base.expanduser() if base else Path.home() / ".cache" / "wh") / "jars"


def _pom(artifacts: Sequence[Artifact]) -> str:
    deps = "".join(
        f"<dependency><groupId>{escape(a.group)}</groupId><artifactId>{escape(a.artifact)}</artifactId>"
        f"<version>{escape(a.version)}</version></dependency>\n"
        for a in artifacts
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n<modelVersion>4.0.0</modelVersion>\n'
        "<groupId>wh.servers</groupId><artifactId>jars</artifactId><version>0</version><packaging>pom</packaging>\n"
        f"<dependencies>\n{deps}</dependencies>\n</project>\n"
    )


def _complete(directory: Path, coords: list[str]) -> tuple[Path, ...] | None:
    try:
        if json.loads((directory / MARKER).read_text()) != coords:
            return None
    except (OSError, ValueError):
        return None
    return tuple(sorted(directory.glob("*.jar")))


def find_mvn() -> str:
    from warehouse.config import get_settings

    mvn = get_settings().mvn or shutil.which("mvn")  # WH_MVN
    if not mvn:
        raise ToolMissing(
            "Maven (mvn) is not installed: it fetches the pinned server jars from Maven Central once, "
            f"into {cache_root()}. Install it (Debian: apt-get install maven) or set WH_MVN to its path"
        )
    return mvn


def resolve(artifacts: Sequence[Artifact], *, progress: Callable[[str], None] | None = None,
            timeout: float = 1800.0) -> Jars:  # fmt: skip
    """The jars of `artifacts` (the first names the folder) and their runtime dependencies."""
    main = artifacts[0]
    coords = [a.coords for a in artifacts]
    root = cache_root()
    directory = root / f"{main.artifact}-{main.version}"
    t0 = time.monotonic()
    jars = _complete(directory, coords)
    if jars is not None:
        return Jars(directory, jars, downloaded=False, seconds=time.monotonic() - t0)

    mvn = find_mvn()
    find_java(8, env_var="JAVA_HOME", what="Maven")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".{directory.name}."))
    try:
        (work / "pom.xml").write_text(_pom(artifacts))
        out_dir = work / "jars"
        argv = [mvn, "-B", "-f", str(work / "pom.xml"), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out_dir}", "-DincludeScope=runtime"]  # fmt: skip
        if progress:
            progress(f"fetching {main.coords} and its dependencies with Maven (first run only)")
        lines = _run_maven(argv, work, progress, timeout)
        if not out_dir.is_dir() or not any(out_dir.glob("*.jar")):
            raise ConfigError(f"Maven resolved no jars for {main.coords}:\n" + "\n".join(lines[-15:]))
        (out_dir / MARKER).write_text(json.dumps(coords) + "\n")
        if directory.exists() and _complete(directory, coords) is None:
            with contextlib.suppress(OSError):  # other pins, or unfinished: replaced as a whole
                directory.rename(work / "stale")
        try:
            out_dir.rename(directory)
        except OSError:  # another process published the same folder first: use it
            if _complete(directory, coords) is None:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    jars = _complete(directory, coords) or ()
    result = Jars(directory, jars, downloaded=True, seconds=time.monotonic() - t0)
    if progress:
        progress(f"fetched {len(jars)} jars, {result.size_bytes / 1e6:.1f} MB, in {result.seconds:.1f} s → {directory}")
    return result


def _run_maven(argv: list[str], cwd: Path, progress: Callable[[str], None] | None, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            lines.append(line)
            # "[INFO] Downloaded from central: https://…/questdb-9.3.4.jar (30 MB at 12 MB/s)";
            # the many small ones (Maven's own plugin on a first run) are only counted
            if progress and "Downloaded from" in line and ".jar " in line:
                url, _, size = line.partition(" (")
                size = size.split(" at ")[0]
                if size.endswith(" MB"):
                    progress(f"  {url.rsplit('/', 1)[-1]} ({size})")
            if time.monotonic() > deadline:
                raise ConfigError(f"Maven did not finish within {timeout:.0f} s")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            (cwd / "mvn.log").write_text("\n".join(lines) + "\n")
    if code != 0:
        errors = [ln for ln in lines if ln.startswith("[ERROR]")] or lines
        hint = ""
        if any("Could not transfer" in ln or "Unknown host" in ln or "resolve" in ln for ln in errors):
            hint = " (is Maven Central reachable? a mirror can be set in ~/.m2/settings.xml)"
        raise ConfigError(f"Maven failed{hint}:\n" + "\n".join(errors[:12]))
    return lines
