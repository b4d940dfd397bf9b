"""`wh servers`: real QuestDB and Apache Kafka on this machine, without Docker, until Ctrl-C/SIGTERM."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from warehouse.cli.common import err, fail, print_error
from warehouse.config import get_settings
from warehouse.errors import WarehouseError


def register(app: typer.Typer) -> None:
    app.command()(servers)


def servers(
    questdb: bool = typer.Option(True, "--questdb/--no-questdb", help="start QuestDB"),
    kafka: bool = typer.Option(True, "--kafka/--no-kafka", help="start Apache Kafka (KRaft, one node)"),
    data: Path | None = typer.Option(None, "--data", help="data directory (default $WH_HOME/servers)"),
    env_file: Path | None = typer.Option(
        None, "--env-file", help="address lines, mode 0600 (default $WH_HOME/servers.env)"
    ),
    timeout: float = typer.Option(120.0, "--timeout", help="seconds each server may take to answer"),
) -> None:
    """Start real QuestDB and Apache Kafka servers on free loopback ports, without Docker.

    The first run fetches their pinned jars from Maven Central (needs `mvn` and Java) into
    ~/.cache/wh/jars (WH_CACHE_DIR). Once both answer, one environment line per address is
    printed on stdout and written to the env file (QDB_CLIENT_CONF, WH_QUESTDB_HTTP,
    WH_QUESTDB_PG, WH_KAFKA_BOOTSTRAP), values shell-quoted where needed;
    `set -a; . $WH_HOME/servers.env; set +a` exports them.
    Ctrl-C or SIGTERM stops both cleanly (exit 0) and removes the env file. Data stays in
    the data directory, and the ports are reused next time when free.
    """
    from warehouse.ingest.kafka import stop_signals
    from warehouse.servers.envfile import env_lines, write_env_file
    from warehouse.servers.kafka import LocalKafkaServer
    from warehouse.servers.questdb import LocalQuestDBServer

    if not questdb and not kafka:
        raise fail("nothing to start: --no-questdb and --no-kafka")
    settings = get_settings()
    data = data if data is not None else settings.home / "servers"
    env_file = env_file if env_file is not None else settings.home / "servers.env"
    with contextlib.suppress(FileNotFoundError):
        env_file.unlink()  # a stale file would tell a waiting script the servers are up

    def say(message: str) -> None:
        err.print(message, highlight=False, markup=False)

    started: list[tuple[str, LocalQuestDBServer | LocalKafkaServer]] = []
    if questdb:
        started.append(("QuestDB", LocalQuestDBServer(data / "questdb", progress=say)))
    if kafka:
        started.append(("Kafka", LocalKafkaServer(data / "kafka", progress=say)))
    code = 0
    with stop_signals() as stop:
        try:
            for _, srv in started:  # downloads first (one at a time, progress readable)
                if stop.is_set():
                    break
                srv.fetch()
            launched: list[LocalQuestDBServer | LocalKafkaServer] = []
            for _, srv in started:  # both JVMs boot at once, spawned from this (main) thread
                if stop.is_set():
                    break
                srv.launch()
                launched.append(srv)
            ready = all(srv.wait_ready(timeout, cancel=stop) for srv in launched) and len(launched) == len(started)
            if ready and not stop.is_set():
                lines = env_lines({k: v for _, srv in started for k, v in srv.env().items()})
                secret = env_lines({k: v for _, srv in started for k, v in srv.secret_env().items()})
                for name, srv in started:
                    rss = srv.rss_bytes() or 0
                    say(f"{name} answers ({srv.startup_seconds or 0:.1f} s after start, RSS {rss / 2**20:.0f} MiB)")
                write_env_file(env_file, lines + secret)
                hidden = [f"# {line.partition('=')[0]}: in {env_file} (mode 0600)" for line in secret]
                print("\n".join(lines + hidden), flush=True)
                say(f"addresses written to {env_file}; Ctrl-C stops the servers")
                while not stop.wait(0.5):
                    for name, srv in started:
                        if not srv.process.running:
                            raise WarehouseError(f"{name} stopped by itself; see {srv.process.log_path}")
        except WarehouseError as exc:
            print_error(exc)
            code = 1
        finally:
            with contextlib.suppress(FileNotFoundError):
                env_file.unlink()
            for name, srv in reversed(started):
                rc = srv.stop()
                if rc is not None:
                    say(f"{name} stopped")
    if code:
        raise typer.Exit(code)
