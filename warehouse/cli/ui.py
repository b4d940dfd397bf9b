"""`wh ui`: Dagster's webserver and daemon over warehouse/defs, on localhost."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import typer

from warehouse.cli.common import err, fail
from warehouse.config import get_settings
from warehouse.servers.process import stop_group


def register(app: typer.Typer) -> None:
    app.command()(ui)


def ui(
    port: int = typer.Option(3000, "--port", "-p", min=1, max=65535, help="webserver port (localhost)"),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds the webserver may take to answer"),
) -> None:
    """Start Dagster (webserver + daemon) with the warehouse's assets, checks, schedules and sensors.

    The instance is dagster_home/ (WH_DAGSTER_HOME): dagster.yaml, workspace.yaml, and its SQLite
    storage (git-ignored). Prints the URL once the webserver answers; while it runs, `wh ingest`
    reports each batch to it (stream/<pipeline> in the asset timeline). Ctrl-C or SIGTERM stops
    both processes (their own process group) and exits 0.
    """
    from warehouse.ingest.kafka import stop_signals

    settings = get_settings()
    home = settings.dagster_instance.resolve()
    workspace = home / "workspace.yaml"
    if not (home / "dagster.yaml").is_file() or not workspace.is_file():
        raise fail(f"{home} has no dagster.yaml / workspace.yaml (WH_DAGSTER_HOME must be a folder like the "
                   "checkout's dagster_home/)")  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log_path = settings.home / "dagster-ui.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    argv = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    with log_path.open("ab") as log, stop_signals() as stop:
        # its own process group: `dagster dev` in the background ignores SIGINT, the group is stopped
        proc = subprocess.Popen(argv, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(url):
                if proc.poll() is not None:
                    raise fail(f"dagster dev exited with {proc.returncode}; see {log_path}")
                if stop.wait(0.5):
                    return
                if time.monotonic() > deadline:
                    raise fail(f"Dagster did not answer at {url} within {timeout:g} s; see {log_path}")
            settings.dagster_ui_file.write_text(json.dumps({"url": url, "dagster_home": str(home), "pid": os.getpid()}))
            print(url, flush=True)
            err.print(f"Dagster UI at {url} (instance {home}; log {log_path}); Ctrl-C stops it", highlight=False)
            while not stop.wait(0.5):
                if proc.poll() is not None:
                    raise fail(f"dagster dev stopped by itself ({proc.returncode}); see {log_path}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                settings.dagster_ui_file.unlink()
            stop_group(proc)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
