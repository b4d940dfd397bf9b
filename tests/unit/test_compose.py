"""docker-compose.yml (server mode for users with Docker): no Docker engine runs here, so the
file is checked offline — Compose's own validation (`docker-compose config`, Debian's 1.29)
and the rules a deployment needs: pinned images, healthchecks, named volumes, no host port
twice, secrets only from .env, the analyst user read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_validates_with_the_example_env_and_refuses_without_secrets() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    ok = subprocess.run([exe, "-f", str(COMPOSE), "--env-file", str(ROOT / ".env.example"), "config", "-q"],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    empty = ROOT / "tests" / "corpus" / "empty.env"
    bare = subprocess.run([exe, "-f", str(COMPOSE), "--env-file", str(empty), "config", "-q"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={k: v for k, v in os.environ.items() if "PASSWORD" not in k})  # fmt: skip
    assert bare.returncode != 0 and "PASSWORD" in bare.stderr, bare.stderr


def test_images_are_pinned_and_every_service_has_a_healthcheck_and_a_named_volume() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    for name, svc in doc["services"].items():
        image = svc["image"]
        assert ":" in image and not image.endswith((":latest", ":main")), (name, image)
        assert "healthcheck" in svc and svc["healthcheck"]["test"], name
        vols = [v.split(":")[0] for v in svc.get("volumes", [])]
        assert any(v in doc["volumes"] for v in vols), (name, vols)
    assert {"kafka", "questdb", "clickhouse"} <= set(doc["services"])


def test_no_host_port_is_published_twice_and_only_on_loopback() -> None:
    seen: dict[str, str] = {}
    for name, svc in _services().items():
        for mapping in svc.get("ports", []):
            host_ip, host_port, _container = mapping.split(":")
            assert host_ip == "127.0.0.1", (name, mapping)
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both publish {host_port}"
            seen[host_port] = name
    assert seen["9000"] == "questdb" and seen["19000"] == "clickhouse"  # ClickHouse native moved off 9000


def test_secrets_come_from_the_env_file_and_clickhouse_has_a_read_only_analyst() -> None:
    text = COMPOSE.read_text()
    assert "PASSWORD:" in text and "change-me" not in text  # values only in .env / .env.example
    example = (ROOT / ".env.example").read_text()
    assert all(line.split("=", 1)[1].startswith(("change-me", "admin")) for line in example.splitlines()
               if "=" in line and not line.startswith("#"))  # fmt: skip
    ch = _services()["clickhouse"]
    assert ch["ulimits"]["nofile"]["soft"] >= 262144
    users = ElementTree.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "wh.xml").getroot()
    analyst = users.find("users/wh_analyst")
    assert analyst is not None and analyst.findtext("profile") == "wh_analyst"
    assert users.findtext("profiles/wh_analyst/readonly") == "1"
    assert [q.text for q in analyst.findall("grants/query")] == ["GRANT SELECT ON wh.*"]
    for user in users.find("users") or []:
        pw = user.find("password")
        if pw is not None:
            assert pw.get("from_env") and not (pw.text or "").strip(), user.tag  # never a literal password
    qdb = _services()["questdb"]["environment"]
    assert qdb["QDB_LINE_AUTO_CREATE_NEW_TABLES"] == "false"
    assert qdb["QDB_PG_READONLY_USER_ENABLED"] == "true"  # wh sql --engine questdb's user
    assert qdb["QDB_PG_READONLY_PASSWORD"].startswith("${WH_QUESTDB_READER_PASSWORD:?")


def test_dagster_runs_from_the_package_with_postgres_storage() -> None:
    """Webserver, daemon and code location share one image built from this package; they find
    each other where the workspace and instance files say; Postgres holds Dagster's storage."""
    svc = _services()
    code, web, daemon, pg = (
        svc["dagster-code"],
        svc["dagster-webserver"],
        svc["dagster-daemon"],
        svc["dagster-postgres"],
    )
    assert code["build"]["dockerfile"] == "deploy/dagster/Dockerfile"
    assert web["image"] == daemon["image"] == code["image"]
    workspace = yaml.safe_load((ROOT / "deploy" / "dagster" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] == "dagster-code" and str(grpc["port"]) == code["command"][code["command"].index("-p") + 1]
    assert "warehouse.defs.definitions" in code["command"]
    instance = yaml.safe_load((ROOT / "deploy" / "dagster" / "dagster.yaml").read_text())
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == "dagster-postgres" and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?")
    assert instance["concurrency"]["pools"]["default_limit"] == 1  # the wh_duckdb pool, as in dagster_home/
    dockerfile = (ROOT / "deploy" / "dagster" / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -e ." in dockerfile and "WH_PROJECT_ROOT=/opt/wh" in dockerfile
    for copied in ("warehouse", "ddl", "queries", "pipelines"):
        assert f"COPY {copied} ./{copied}" in dockerfile
