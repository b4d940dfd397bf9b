"""warehouse/servers without servers: the jar cache, Java lookup, ports, env file, cluster ids."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from warehouse.servers import maven, process
from warehouse.servers.envfile import env_lines, write_env_file
from warehouse.servers.kafka import kafka_uuid
from warehouse.servers.process import ToolMissing

ART = [maven.Artifact("org.example", "server", "1.2.3"), maven.Artifact("org.example", "log<ger>", "9")]


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in `mvn` that records its calls and 'copies' two jars into -DoutputDirectory."""
    calls = tmp_path / "calls"
    script = tmp_path / "mvn"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) d="${a#-DoutputDirectory=}";; esac; done\n'
        'mkdir -p "$d" && echo jar > "$d/server-1.2.3.jar" && echo jar > "$d/dep-1.jar"\n'
        'echo "[INFO] Downloaded from central: https://repo/x/server-1.2.3.jar (3 B at 1 B/s)"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("WH_MVN", str(script))
    monkeypatch.setenv("WH_CACHE_DIR", str(tmp_path / "cache"))
    return calls


def test_resolve_once_then_from_cache_without_maven(fake_mvn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    first = maven.resolve(ART, progress=said.append)
    assert first.downloaded and [p.name for p in first.jars] == ["dep-1.jar", "server-1.2.3.jar"]
    assert first.directory == Path(str(fake_mvn.parent / "cache" / "jars" / "server-1.2.3"))
    assert json.loads((first.directory / ".complete").read_text()) == [a.coords for a in ART]
    assert said[0].startswith("fetching org.example:server:1.2.3") and "2 jars" in said[-1]
    assert "copy-dependencies" in fake_mvn.read_text() and "-DincludeScope=runtime" in fake_mvn.read_text()
    # a second call does nothing: no Maven needed at all
    monkeypatch.setenv("WH_MVN", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    second = maven.resolve(ART)
    assert not second.downloaded and second.jars == first.jars
    assert fake_mvn.read_text().count("\n") == 1
    assert not [p for p in first.directory.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_another_process_publishing_first_wins(fake_mvn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two resolvers at once (pytest workers): the second rename fails, its copy is dropped."""
    final = fake_mvn.parent / "cache" / "jars" / "server-1.2.3"
    script = Path(str(fake_mvn.parent / "mvn"))
    script.write_text(script.read_text() + (
        f'mkdir -p {final} && echo theirs > {final}/server-1.2.3.jar && '
        f"echo '{json.dumps([a.coords for a in ART])}' > {final}/.complete\n"
    ))  # fmt: skip
    got = maven.resolve(ART)
    assert [p.name for p in got.jars] == ["server-1.2.3.jar"] and got.jars[0].read_text() == "theirs\n"
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".")]


def test_changed_pins_are_resolved_again(fake_mvn: Path) -> None:
    maven.resolve(ART)
    other = maven.resolve([ART[0], maven.Artifact("org.example", "log<ger>", "10")])
    assert other.downloaded and fake_mvn.read_text().count("\n") == 2


def test_pom_escapes_coordinates() -> None:
    assert "<artifactId>log&lt;ger&gt;</artifactId>" in maven._pom(ART)


def test_missing_maven_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("WH_MVN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="apt-get install maven"):
        maven.resolve(ART)


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "JVM_DIR", tmp_path / "no-jvms")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ToolMissing, match=r"Java 25 or newer; found no Java.*openjdk-25.*WH_X_JAVA_HOME"):
        process.find_java(25, env_var="WH_X_JAVA_HOME", what="X")


def test_java_version_parsing(tmp_path: Path) -> None:
    for text, major in (('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_401"', 8),
                        ('openjdk version "25" 2025-09-16', 25)):  # fmt: skip
        exe = tmp_path / f"java{major}"
        exe.write_text(f"#!/bin/sh\necho '{text}' >&2\n")
        exe.chmod(0o755)
        assert process.java_major(str(exe)) == major


def test_ports_are_reused_when_free(tmp_path: Path) -> None:
    state = tmp_path / "ports.json"
    first = process.stable_ports(state, ("a", "b"), {"a": None, "b": None})
    assert len(set(first.values())) == 2
    assert process.stable_ports(state, ("a", "b"), {"a": None, "b": None}) == first
    assert process.stable_ports(state, ("a", "b"), {"a": 1, "b": None}) == {"a": 1, "b": first["b"]}


def test_env_file_is_private_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "home" / "servers.env"
    write_env_file(path, ["A=1", "QDB_CLIENT_CONF=http::addr=127.0.0.1:9;"])
    assert path.read_text() == "A=1\nQDB_CLIENT_CONF=http::addr=127.0.0.1:9;\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["servers.env"]


def test_kafka_cluster_id_is_a_kafka_uuid() -> None:
    cid = kafka_uuid()
    assert len(cid) == 22 and "=" not in cid
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    draws = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])  # '-wA…' then 'AAA…'
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert kafka_uuid() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_env_lines_survive_a_shell() -> None:
    import subprocess

    lines = env_lines({"QDB_CLIENT_CONF": "http::addr=127.0.0.1:9000;", "WH_KAFKA_BOOTSTRAP": "127.0.0.1:9092"})
    assert lines == ["QDB_CLIENT_CONF='http::addr=127.0.0.1:9000;'", "WH_KAFKA_BOOTSTRAP=127.0.0.1:9092"]
    out = subprocess.run(["sh", "-c", "\n".join([*lines, 'echo "$QDB_CLIENT_CONF|$WH_KAFKA_BOOTSTRAP"'])],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out == "http::addr=127.0.0.1:9000;|127.0.0.1:9092\n"
