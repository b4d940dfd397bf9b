"""Streaming commands: `wh broker`, `wh feed`, `wh ingest`, `wh status`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import typer
from rich.table import Table
from rich.text import Text

from warehouse.cli.common import WireEncoding, console, err, fail, progress_bar, shorten
from warehouse.config import Settings, get_settings
from warehouse.errors import ConfigError, WarehouseError
from warehouse.ingest.files import parquet_columns
from warehouse.records import SourceBatch


def parse_sinks(text: str) -> list[str]:
    """`--sinks questdb,clickhouse,duckdb` → names, checked before anything is consumed."""
    from warehouse.sinks import check_sink_names

    names = [s.strip() for s in text.split(",") if s.strip()]
    try:
        check_sink_names(names)
    except ConfigError as exc:
        raise ConfigError(f"--sinks {text!r}: {exc}") from None
    return names


def register(app: typer.Typer) -> None:
    for command in (broker, feed, ingest, status):
        app.command()(command)


def broker(
    port: int | None = typer.Option(None, "--port", help="also accept clients on this port (forwarded)"),
) -> None:
    """Run an embedded Kafka-protocol broker (librdkafka's mock cluster) until Ctrl-C/SIGTERM.

    The first line printed is `bootstrap=HOST:PORT`; the address is also written to
    $WH_HOME/broker.addr so `wh feed` and `wh ingest` find it without configuration.
    """
    from warehouse.ingest.kafka import MockBroker, PortForwarder, stop_signals

    settings = get_settings()
    mock = MockBroker()
    forward = None
    address = mock.bootstrap
    if port is not None:
        try:
            forward = PortForwarder(port, mock.bootstrap)
        except OSError as exc:
            raise fail(f"--port {port}: {exc}") from None
        address = f"127.0.0.1:{port}"
    print(f"bootstrap={address}", flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.broker_file.write_text(address + "\n")
    err.print("embedded broker (librdkafka mock cluster): keeps ~5 MB per partition, topics auto-created "
              "with 4 partitions; Ctrl-C stops it")  # fmt: skip
    with stop_signals() as stop:
        while not stop.wait(0.5):
            pass
    if settings.broker_file.is_file() and settings.broker_file.read_text().strip() == address:
        settings.broker_file.unlink()
    if forward is not None:
        forward.close()
    mock.close()


def feed(
    source: str = typer.Option("synthetic", "--source", help="synthetic, or a Tardis CSV / wh Parquet file"),
    count: int = typer.Option(100_000, "--count", "-n", min=0, help="ticks to publish (synthetic)"),
    rate: float | None = typer.Option(
        None, "--rate", min=0.0, help="ticks per second (default or 0: as fast as possible)"
    ),
    topic: str | None = typer.Option(None, "--topic", help="default WH_KAFKA_TOPIC or 'ticks'"),
    seed: int = typer.Option(1, "--seed"),
    bad_rate: float = typer.Option(0.0, "--bad-rate", min=0.0, max=1.0, help="synthetic: share of bad ticks"),
    dup_rate: float = typer.Option(0.0, "--dup-rate", min=0.0, max=1.0, help="synthetic: share of duplicated ticks"),
    ooo_rate: float = typer.Option(0.0, "--ooo-rate", min=0.0, max=1.0, help="synthetic: share of out-of-order ticks"),
    malformed_every: int = typer.Option(
        0, "--malformed-every", min=0, help="also send a malformed message every N ticks (0: never)"
    ),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="host:port (default: WH_KAFKA_BOOTSTRAP or `wh broker`)"
    ),
    connect_timeout: float = typer.Option(
        10.0, "--connect-timeout", min=0.1, help="seconds to wait for the cluster to answer before giving up"
    ),
    encoding: WireEncoding = typer.Option(
        WireEncoding.json,
        "--encoding",
        help="json: one tick per message; arrow: many ticks of one instrument per message",
    ),
    ticks_per_message: int = typer.Option(1000, "--ticks-per-message", min=1, help="arrow: ticks per message, at most"),
) -> None:
    """Publish ticks to Kafka (key = symbol), idempotent producer; reports delivery errors.

    --encoding json (default): one JSON tick per message, readable by any client. arrow: an
    Arrow IPC stream of up to --ticks-per-message ticks of one instrument per message, with
    headers content-type: application/vnd.apache.arrow.stream and wh-type: quote|trade;
    `wh ingest` reads both, exactly once, from the same topic."""
    from warehouse.ingest.kafka import bootstrap_servers, produce
    from warehouse.ingest.synthetic import FaultRates, SyntheticFeed

    settings = get_settings()
    addr = bootstrap_servers(settings, bootstrap)
    kafka_config = _reachable(addr, settings.kafka_config(), connect_timeout)
    topic = topic or settings.kafka.topic
    batches: Iterator[SourceBatch]
    if source == "synthetic":
        feed_ = SyntheticFeed(ticks=count, seed=seed, chunk=min(count, 100_000) or 1,
                              faults=FaultRates(bad_rate, dup_rate, ooo_rate, 0.0))  # fmt: skip
        batches = feed_.batches()
        total = count
    else:
        path = Path(source)
        if not path.is_file():
            raise fail(f"--source {source!r}: no such file (use 'synthetic' or a path)")
        from warehouse.pipeline.sources import file_batches

        parquet = path.suffix == ".parquet"
        total = parquet_columns(path)[1] if parquet else 0
        batches = file_batches(path, "parquet" if parquet else "tardis")
    with progress_bar() as progress:
        task = progress.add_task(f"feed → {topic}", total=total or None, rows=0)
        report = produce(addr, topic, batches, extra_config=kafka_config, rate=rate, malformed_every=malformed_every,
                         on_progress=lambda r: progress.update(task, completed=r.ticks, rows=r.ticks),
                         encoding=encoding.value, ticks_per_message=ticks_per_message)  # fmt: skip
    console.print(f"produced {report.produced:,} messages ({report.ticks:,} ticks, {report.malformed:,} malformed on "
                  f"purpose) to {topic} in {report.seconds:.2f} s = {report.ticks / max(report.seconds, 1e-9):,.0f} "
                  f"ticks/s; delivered {report.delivered:,}, failed {report.failed:,}")  # fmt: skip
    for e, n in report.errors.items():
        err.print(f"delivery error ×{n}: {shorten(e)}")
    if report.failed:
        raise typer.Exit(1)


def ingest(
    topic: str | None = typer.Option(None, "--topic", help="default WH_KAFKA_TOPIC or 'ticks'"),
    group: str | None = typer.Option(None, "--group", help="consumer group (default WH_KAFKA_GROUP or 'wh-ingest')"),
    pipeline: str | None = typer.Option(
        None,
        "--pipeline",
        "-p",
        help="pipeline spec (pipelines/NAME.yaml, or a path): topic, group, rules, "
        "sinks, batch size; options given here win (default: pipelines/ticks.yaml)",
    ),
    sinks: str | None = typer.Option(
        None, "--sinks", help="comma-separated: duckdb, clickhouse, questdb (default: the spec's)"
    ),
    batch_rows: int | None = typer.Option(
        None, "--batch-rows", min=1, help="flush after this many messages (default 50,000)"
    ),
    batch_seconds: float | None = typer.Option(
        None, "--batch-seconds", min=0.001, help="... or this many seconds (default 2)"
    ),
    stop_when_idle: float | None = typer.Option(
        None, "--stop-when-idle", min=0.0, help="exit after this many idle seconds"
    ),
    bootstrap: str | None = typer.Option(
        None, "--bootstrap", help="host:port (default: WH_KAFKA_BOOTSTRAP or `wh broker`)"
    ),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        help="static group membership (group.instance.id): a restart takes its "
        "partitions back at once instead of after the session timeout",
    ),
    unsafe_commit_first: bool = typer.Option(
        False,
        "--debug-commit-before-write",
        hidden=True,
        help="negative control for tests: commit offsets before writing",
    ),
    connect_timeout: float = typer.Option(
        10.0, "--connect-timeout", min=0.1, help="seconds to wait for the cluster to answer before giving up"
    ),
) -> None:
    """Consume ticks from Kafka into the sinks, exactly once; Ctrl-C flushes, commits and exits 0."""
    from warehouse.ingest.consumer import Ingestor, IngestStats
    from warehouse.ingest.kafka import bootstrap_servers, stop_signals
    from warehouse.pipeline.spec import load_spec
    from warehouse.sinks import open_sinks

    settings = get_settings()
    spec = load_spec(pipeline or "ticks")
    source = spec.source.stream
    if source is None:
        raise fail(f"--pipeline {pipeline}: the spec reads files, not Kafka; use `wh import --pipeline {pipeline}`")
    explicit = pipeline is not None  # a named spec wins over WH_KAFKA_* / WH_BATCH_*; flags win over both
    topic = topic or (source.topic if explicit else settings.kafka.topic)
    group = group or (source.group if explicit else settings.kafka.group)
    batch_rows = batch_rows or (spec.batch.rows if explicit else settings.batch_rows)
    batch_seconds = batch_seconds or (spec.batch.seconds if explicit else settings.batch_seconds)
    names: list[str] = parse_sinks(sinks) if sinks is not None else [str(n) for n in spec.sinks]
    addr = bootstrap_servers(settings, bootstrap)
    kafka_config = _reachable(addr, settings.kafka_config(), connect_timeout)
    # Local mode: serve the embedded ClickHouse over HTTP while ingesting, so `wh query`,
    # `wh sql`, `wh status` (and Dagster) in other processes can read it; DuckDB is opened
    # only for each batch's write, readers wait for the file for up to WH_LOCK_WAIT_SECONDS.
    server = None
    if "clickhouse" in names and not settings.clickhouse_is_server:
        from warehouse.sql.chserver import LocalClickHouseServer, write_secret
        from warehouse.sql.engines.clickhouse import close_embedded, local_server

        if local_server(settings) is None:
            close_embedded()
            server = LocalClickHouseServer(settings.home / "clickhouse-server", data_dir=settings.chdb_path)
            server.start()
    try:
        if server is not None:
            # passwords first (0600 from creation), then the address (no password) readers look for
            write_secret(settings.clickhouse_secret_file, server.credentials)
            settings.clickhouse_server_file.write_text(server.url + "\n")
            err.print(f"embedded ClickHouse served at {server.url} while ingesting "
                      f"(users wh_writer / wh_reader, passwords in {settings.clickhouse_secret_file})")  # fmt: skip
        opened = open_sinks(names, settings, hold_duckdb=False)
    except BaseException:
        _stop_local_server(settings, server)
        raise

    report = _dagster_reporter(settings, spec.name, topic or settings.kafka.topic, group or settings.kafka.group)

    def on_batch(st: IngestStats) -> None:
        stored = ", ".join(f"{k}={v:,}" for k, v in st.stored.items())
        err.print(f"batch {st.batches}: {st.last_batch:,} msgs | total {st.messages:,} ({st.rate:,.0f}/s) | "
                  f"stored {stored} | rejects {st.rejected:,} | lag {st.lag if st.lag is not None else '?'}")  # fmt: skip
        if report is not None:
            report(st)

    def on_retry(sink: str, attempt: int, delay: float, exc: BaseException) -> None:
        if sink == "kafka-commit":  # the rows are stored; only Kafka's copy of the offsets trails
            err.print(Text(f"offset commit refused: {shorten(str(exc))}; the rows are stored, the commit "
                           "is repeated while the partitions stay assigned", style="yellow"))  # fmt: skip
            return
        err.print(Text(f"{sink} failed (attempt {attempt + 1}): {shorten(str(exc))}; consumption paused, "
                       f"retry in {delay:.1f} s", style="yellow"))  # fmt: skip

    def on_loss(partition: int, first: int, last: int) -> None:
        err.print(f"warning: {topic or settings.kafka.topic}/{partition}: offsets {first:,}–{last:,} "
                  f"({last - first + 1:,} messages) were expired by the broker before this group read them; "
                  "recorded in wh.stream_losses (wh status shows it)", markup=False, highlight=False)  # fmt: skip

    def on_assign(partitions: dict[int, int]) -> None:
        where = ", ".join(f"{p} @ {o:,}" if o >= 0 else f"{p} @ start" for p, o in sorted(partitions.items()))
        err.print(f"assigned {topic or settings.kafka.topic} partitions {where or '(none)'}", markup=False,
                  highlight=False)  # fmt: skip

    ing = Ingestor(opened, bootstrap=addr, topic=topic, group=group, batch_rows=batch_rows, batch_seconds=batch_seconds,
                   stop_when_idle=stop_when_idle, sanitize=spec.sanitize.config(),
                   kafka_config={**kafka_config, "session.timeout.ms": str(settings.kafka.session_timeout_ms),
                                 **({"group.instance.id": instance_id} if instance_id else {})},
                   unsafe_commit_first=unsafe_commit_first,
                   unsafe_delay=settings.debug_delay_after_commit if unsafe_commit_first else 0.0,
                   on_batch=on_batch, on_retry=on_retry, on_loss=on_loss, on_assign=on_assign,
                   plan_dir=settings.home / "ingest")  # fmt: skip
    try:
        with stop_signals() as stop:
            stats = ing.run(stop)
    finally:
        for s in opened:
            s.close()
        _stop_local_server(settings, server)
    console.print(f"ingested {stats.messages:,} messages in {stats.batches:,} batches; "
                  + ", ".join(f"{k}: {v:,} new ticks" for k, v in stats.stored.items())
                  + f"; {stats.rejected:,} rejects"
                  + (f"; {stats.lost:,} messages LOST to broker retention (wh.stream_losses)" if stats.lost else ""))  # fmt: skip


def _quiet(config: dict[str, str]) -> dict[str, str]:
    """Client settings whose librdkafka log lines and errors are printed once each, not per retry."""
    from warehouse.ingest.broker_check import LibrdkafkaLog

    log = LibrdkafkaLog(echo=lambda text: err.print(f"kafka: {shorten(text)}"))
    # the client takes a logging.Logger and a callable here; the helpers' signatures say str values
    return cast(dict[str, str], {**config, **log.config()})


def _reachable(addr: str, config: dict[str, str], timeout: float) -> dict[str, str]:
    """Refuse an unreachable cluster before producing or consuming (one Error line, exit 1);
    the returned settings print each distinct librdkafka message once."""
    from warehouse.ingest.broker_check import check_broker

    check_broker(addr, config, timeout=timeout)
    return _quiet(config)


def _stop_local_server(settings: Any, server: Any) -> None:
    if server is None:
        return
    for f in (settings.clickhouse_server_file, settings.clickhouse_secret_file):
        if f.is_file():
            f.unlink()
    server.stop()


def _dagster_reporter(settings: Settings, spec: str, topic: str, group: str) -> Callable[[Any], None] | None:
    """While `wh ui` runs (it leaves $WH_HOME/dagster-ui.json), each committed batch is reported
    to its Dagster instance as a materialization of `stream/<spec>`."""
    import json

    if not settings.dagster_ui_file.is_file():
        return None
    try:
        home = Path(json.loads(settings.dagster_ui_file.read_text())["dagster_home"])
        from warehouse.defs.report import batch_reporter

        reporter = batch_reporter(home, spec, topic, group, warn=lambda m: err.print(f"warning: {shorten(m)}"))
    except Exception as exc:
        err.print(f"warning: not reporting to Dagster ({shorten(str(exc))})")
        return None
    err.print(f"reporting each batch to Dagster ({home}) as stream/{spec}")
    return reporter


def status(
    group: str | None = typer.Option(None, "--group"),
    topic: str | None = typer.Option(None, "--topic"),
) -> None:
    """Row counts per sink and table, and the stream offsets each sink holds."""
    from warehouse.sql.engines import open_engine

    settings = get_settings()
    group = group or settings.kafka.group
    topic = topic or settings.kafka.topic
    t = Table(title="warehouse", title_justify="left")
    t.add_column("engine")
    for name in ("market_ticks", "trades", "rejects", "gaps"):
        t.add_column(name, justify="right")
    offsets_line: list[str] = []
    losses_line: list[str] = []
    for engine in ("duckdb", "clickhouse"):
        try:
            eng = open_engine(engine, settings, read_only=True)
        except WarehouseError as exc:
            t.add_row(engine, *["?"] * 4)
            err.print(f"{engine}: {shorten(str(exc))}")
            continue
        try:
            from warehouse.sql import queries

            try:
                row = queries.load("table_counts", internal=True).run(eng, {}).to_pylist()[0]
                t.add_row(engine, *[f"{row[name]:,}" for name in ("market_ticks", "trades", "rejects", "gaps")])
            except WarehouseError:
                t.add_row(engine, *["-"] * 4)  # no tables yet
            if engine == "duckdb":
                try:
                    rows = queries.load("kafka_offsets", internal=True).run(eng, {"group_id": group, "topic": topic})
                    offsets_line = [f"{r['partition']}:{r['next_offset']:,}" for r in rows.to_pylist()]
                except WarehouseError:
                    pass
            if not losses_line:
                try:
                    rows = queries.load("stream_losses", internal=True).run(eng, {"group_id": group, "topic": topic})
                    losses_line = [f"partition {r['partition']}: {r['missing']:,} messages (offsets "
                                   f"{r['first_lost']:,}–{r['last_lost']:,}, {r['events']} event(s))"
                                   for r in rows.to_pylist()]  # fmt: skip
                except WarehouseError:
                    pass
        finally:
            eng.close()
    console.print(t)
    console.print(f"DuckDB holds {topic} up to (next offset per partition, group {group}): "
                  + (", ".join(offsets_line) or "nothing yet"))  # fmt: skip
    if losses_line:
        console.print(f"LOST to broker retention before group {group} read them: " + "; ".join(losses_line),
                      markup=False, highlight=False)  # fmt: skip
    else:
        console.print(f"No messages of {topic} lost to broker retention (group {group}).")
    try:
        from warehouse.ingest.kafka import bootstrap_servers, group_positions

        addr = bootstrap_servers(settings)
        positions = group_positions(addr, topic, group, _quiet(settings.kafka_config()))
        committed = {p: pos.committed for p, pos in positions.items() if pos.committed is not None}
        console.print(f"Kafka committed for group {group}: "
                      + (", ".join(f"{p}:{o:,}" for p, o in sorted(committed.items())) or "nothing yet"))  # fmt: skip
        if positions:
            lag = Table(title=f"consumer lag of group {group} on {topic} (messages not yet committed)",
                        title_justify="left")  # fmt: skip
            for col in ("partition", "committed", "end offset", "lag"):
                lag.add_column(col, justify="right")
            for p, pos in sorted(positions.items()):
                lag.add_row(str(p), "-" if pos.committed is None else f"{pos.committed:,}", f"{pos.high:,}",
                            f"{pos.lag:,}")  # fmt: skip
            lag.add_row("all", "", "", f"{sum(pos.lag for pos in positions.values()):,}", style="bold")
            console.print(lag)
    except WarehouseError as exc:
        console.print(f"Kafka: {shorten(str(exc))}")
