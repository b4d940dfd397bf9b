"""Dagster over the warehouse (warehouse/defs): the definitions load, a day materializes
in-process into the real engines, each check fails on bad data and passes on clean data,
`wh ingest` reports its batches, and (slow) `wh ui` serves the graph to a real browser."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
ROOT = Path(__file__).resolve().parents[2]
WH = [sys.executable, "-m", "warehouse.cli.main"]
DAY = "2020-02-22"


def defs():
    from warehouse.defs.definitions import build

    return build()


def materialize(keys: list[list[str]], partition: str | None = None, instance: Any = None):
    import dagster as dg

    from warehouse.defs.resources import WarehouseResource

    d = defs()
    wanted = {dg.AssetKey(k) for k in keys}
    assets = [a for a in d.assets if isinstance(a, dg.AssetsDefinition) and wanted & set(a.keys)]
    return dg.materialize(assets, partition_key=partition, resources={"warehouse": WarehouseResource()},
                          selection=list(wanted), instance=instance, raise_on_error=False)  # fmt: skip


def stored_ticks() -> dict[str, int]:
    """Quotes + trades per engine (WH_HOME's)."""
    from warehouse.config import get_settings
    from warehouse.sql.engines import close_embedded, open_engine

    out = {}
    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, get_settings(), read_only=True)
        try:
            n = eng.query("SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades) AS n")
            out[engine] = int(n.column("n")[0].as_py())
        finally:
            eng.close()
    close_embedded()
    return out


def checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


@pytest.fixture
def landing(home: Path, tardis) -> Path:
    folder = home / "landing" / "tardis"
    folder.mkdir(parents=True)
    for f in tardis:
        shutil.copy(f, folder / f.name)
    return folder


def test_definitions_load_with_an_asset_set_per_pipeline_spec() -> None:
    import dagster as dg

    d = defs()
    d.validate_loadable(d)
    keys = {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()}
    assert {"ddl/duckdb", "ddl/clickhouse", "landing/files", "files/ticks", "landing/fx_csv", "fx_csv/ticks",
            "kafka/ticks", "stream/ticks", "analytics/bars_1m", "analytics/leaderboard_daily",
            "analytics/zscore_snapshot", "sim/ledger"} <= keys  # fmt: skip
    graph = d.resolve_asset_graph()
    ticks = graph.get(dg.AssetKey(["files", "ticks"]))
    assert ticks.partitions_def is not None and ticks.partitions_def.get_first_partition_key() == "2020-01-01"
    check_names = {c.name for c in d.resolve_asset_graph().asset_check_keys if c.asset_key == ticks.key}
    assert check_names == {"reject_rate", "no_duplicates", "engines_agree", "sequence_gaps"}
    status = {s.name: s.default_status for s in d.sensors or []}
    assert status["landing_files"] == dg.DefaultSensorStatus.RUNNING
    assert status["report_failures"] == dg.DefaultSensorStatus.RUNNING
    for job in ("daily_import", "replay"):  # a job of the assets alone would skip their checks
        assert d.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys, job
    scheds = {s.name: s.default_status for s in d.schedules or []}
    assert scheds == {"daily_import_schedule": dg.DefaultScheduleStatus.STOPPED,
                      "hourly_analytics_schedule": dg.DefaultScheduleStatus.STOPPED}  # fmt: skip


def test_dg_cli_lists_the_definitions() -> None:
    """pyproject's [tool.dg] makes the checkout a dg project: `dg list defs` loads the code location."""
    dg_exe = str(Path(sys.executable).parent / "dg")
    r = subprocess.run([dg_exe, "list", "defs", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    listed = json.loads(r.stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert assets["analytics/bars_1m"]["dependency_keys"] == ["files/ticks", "fx_csv/ticks", "stream/binance_live",
                                                              "stream/ticks"]  # fmt: skip
    # the capture spec: the worker in front of its topic, the topic in front of the stream
    assert assets["kafka/binance_ticks"]["dependency_keys"] == ["capture/binance_live"]
    assert assets["stream/binance_live"]["dependency_keys"][:2] == ["ddl/clickhouse", "ddl/duckdb"]
    assert {c["key"] if "key" in c else str(c) for c in listed["asset_checks"]} and listed["sensors"]


def test_a_day_materializes_into_both_engines_and_its_checks_pass(home: Path, landing: Path) -> None:

    assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]]).success
    result = materialize([["files", "ticks"]], DAY)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    md = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    assert md["files"] == 2 and md["rows read"] == 19_998 and md["rows stored (new)"] == 19_998
    assert md["quotes in the day"] == 9_999 and md["trades in the day"] == 9_999
    assert "BTCUSDT" in md["most active instruments"]
    assert checks(result) == {"reject_rate": True, "no_duplicates": True, "engines_agree": True, "sequence_gaps": True}
    assert stored_ticks() == {"duckdb": 19_998, "clickhouse": 19_998}
    again = materialize([["files", "ticks"]], DAY)  # idempotent: a re-run adds nothing
    (event,) = again.get_asset_materialization_events()
    assert event.materialization.metadata["rows stored (new)"].value == 0
    other = materialize([["files", "ticks"]], "2020-02-23")  # no file of that day: an empty, passing day
    assert other.success and other.get_asset_materialization_events()[0].materialization.metadata["files"].value == 0


def test_each_check_fails_on_bad_data(home: Path, landing: Path) -> None:
    from warehouse.config import get_settings
    from warehouse.sql.engines import DuckDBEngine

    assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]]).success
    assert materialize([["files", "ticks"]], DAY).success
    duck = DuckDBEngine(get_settings().duckdb_path)
    try:  # a second copy of one stored quote, behind the sinks' back, in DuckDB only
        duck.command("INSERT INTO wh.market_ticks SELECT * FROM wh.market_ticks LIMIT 1")
    finally:
        duck.close()
    result = materialize([["files", "ticks"]], DAY)
    assert not result.success  # blocking checks failed
    assert checks(result) == {
        "reject_rate": True,
        "no_duplicates": False,
        "engines_agree": False,
        "sequence_gaps": True,
    }

    # a day whose file is 20 % junk: the reject rate (limit 5 %) blocks it
    fx = home / "landing" / "fx"
    fx.mkdir(parents=True)
    lines = ["time,bid,ask"] + [f"2024-01-02 10:00:{i // 10:02d}.{i % 10}00,1.1{i:03d},1.2{i:03d}" for i in range(80)]
    lines += [f"2024-01-02 10:01:{i:02d}.000,-1,1.2" for i in range(20)]  # non-positive bid
    (fx / "eurusd_2024-01-02.csv").write_text("\n".join(lines) + "\n")
    bad = materialize([["fx_csv", "ticks"]], "2024-01-02")
    assert not bad.success
    c = checks(bad)
    assert c["reject_rate"] is False and c["no_duplicates"] is True, c
    rate = next(e for e in bad.get_asset_check_evaluations() if e.check_name == "reject_rate")
    assert rate.metadata["reject rate"].value == pytest.approx(0.2)


def test_day_checks_from_figures() -> None:
    """The check logic on its own: gaps warn, disagreement and duplicates fail."""
    import dagster as dg

    from warehouse.defs.assets import day_checks

    good = {"quotes": 10, "quote_keys": 10, "trades": 5, "trade_keys": 5, "rejects": 0, "gaps": 0}
    key = dg.AssetKey(["x", "ticks"])
    res = {r.check_name: r for r in day_checks(key, {"duckdb": good, "clickhouse": dict(good)}, 0.05)}
    assert all(r.passed for r in res.values())
    gappy = {**good, "gaps": 2}
    res = {r.check_name: r for r in day_checks(key, {"duckdb": gappy, "clickhouse": gappy}, 0.05)}
    assert not res["sequence_gaps"].passed and res["sequence_gaps"].severity == dg.AssetCheckSeverity.WARN
    assert res["engines_agree"].passed and res["no_duplicates"].passed
    res = {r.check_name: r for r in day_checks(key, {"duckdb": good, "clickhouse": {**good, "rejects": 1}}, 0.05)}
    assert not res["engines_agree"].passed
    res = {r.check_name: r for r in day_checks(key, {"duckdb": {**good, "rejects": 1}}, 0.05)}
    assert not res["reject_rate"].passed  # 1 / 16 = 6.25 %, over 5 %
    assert res["reject_rate"].metadata["reject rate"].value == pytest.approx(1 / 16)


def test_no_secret_reaches_dagster(home: Path, landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    canary = "canary-Zx81-do-not-print"
    monkeypatch.setenv("WH_KAFKA_PASSWORD", canary)
    monkeypatch.setenv("WH_KAFKA_USERNAME", "analyst")
    monkeypatch.setenv("WH_CLICKHOUSE_PASSWORD", canary)  # embedded mode: unused, but present
    with dg.instance_for_test() as instance:
        assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]], instance=instance).success
        assert materialize([["files", "ticks"]], DAY, instance=instance).success
        runs = instance.get_runs()
        text = "".join(str(r) for run in runs for r in instance.all_logs(run.run_id))
        assert len(runs) == 2 and "rows stored (new)" in text
        assert canary not in text
        assert all(canary not in json.dumps(run.run_config, default=str) for run in instance.get_runs())


@pytest.mark.slow  # ~18 s: the consumer creates a fresh Dagster instance (SQLite schemas) and serves ClickHouse
def test_wh_ingest_reports_each_batch_to_the_ui_instance(home: Path, tmp_path: Path, broker: str, topic: str) -> None:
    import dagster as dg

    from warehouse.ingest.kafka import produce
    from warehouse.ingest.synthetic import SyntheticFeed

    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", instance_dir)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster-ui.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "dagster_home": str(instance_dir)}))
    produce(broker, topic, SyntheticFeed(ticks=6_000, seed=4).batches())
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    r = subprocess.run([*WH, "ingest", "--topic", topic, "--group", f"g-{topic}", "--batch-rows", "2000",
                        "--stop-when-idle", "1.5"], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    batches = r.stderr.count("\nbatch ") + r.stderr.startswith("batch ")
    assert "reporting each batch to Dagster" in r.stderr and batches >= 3
    instance = dg.DagsterInstance.from_config(str(instance_dir))
    events = instance.fetch_materializations(dg.AssetKey(["stream", "ticks"]), limit=100).records
    assert len(events) == batches
    newest = events[0].asset_materialization
    assert newest is not None and newest.metadata["messages so far"].value == 6_000
    assert newest.metadata["stored on duckdb so far"].value + newest.metadata["rejects so far"].value == 6_000


# -- the UI, for real ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
STEPS = """query Steps($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } }
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename
    ... on ExecutionStepStartEvent { stepKey timestamp } ... on ExecutionStepSuccessEvent { stepKey timestamp } } } } }"""


def _two_runs_share_the_duckdb_pool(url: str, repo: dict[str, Any]) -> None:
    """Two runs that both write DuckDB (files/ticks, one UTC day each) launched at once: the
    `wh_duckdb` pool (limit 1, dagster.yaml) lets one step run at a time — never both."""
    runs = []
    for day in (DAY, "2020-02-23"):
        params = {"selector": {"repositoryLocationName": "warehouse", "repositoryName": repo.get("name", "__repository__"),
                               "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["files", "ticks"]}]},
                  "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]}}  # fmt: skip
        data = _graphql(url, LAUNCH, {"params": params})["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        runs.append(data["run"]["runId"])
    spans = []
    deadline = time.monotonic() + 300
    for run_id in runs:
        while True:
            data = _graphql(url, STEPS, {"runId": run_id})
            status = data["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            assert time.monotonic() < deadline, f"run {run_id} still {status}"
            time.sleep(1)
        assert status == "SUCCESS", (run_id, status)
        events = data["logsForRun"]["events"]
        start = next(float(e["timestamp"]) for e in events if e["__typename"] == "ExecutionStepStartEvent")
        end = next(float(e["timestamp"]) for e in events if e["__typename"] == "ExecutionStepSuccessEvent")
        spans.append((start, end))
    (_, a1), (b0, _) = sorted(spans)
    assert a1 <= b0, f"the two DuckDB-writing steps overlapped: {spans}"


@pytest.mark.slow
def test_wh_ui_serves_assets_checks_schedules_and_sensors_to_a_browser(home: Path, tmp_path: Path,
                                                                      landing: Path) -> None:  # fmt: skip
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        from servers import unavailable

        unavailable("chromium is not installed (Debian package chromium; .ci/run installs it)")
    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    for f in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(ROOT / "dagster_home" / f, instance_dir)
    (instance_dir / "workspace.yaml").write_text(
        (instance_dir / "workspace.yaml").read_text().replace("working_directory: ..", f"working_directory: {ROOT}")
    )
    assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]]).success
    from warehouse.sql.engines import close_embedded

    close_embedded()  # the runs (other processes) open the embedded ClickHouse
    port = _free_port()
    env = {**os.environ, "WH_HOME": str(home), "WH_DAGSTER_HOME": str(instance_dir)}
    proc = subprocess.Popen([*WH, "ui", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}", proc.stderr.read() if proc.stderr else ""
        assert json.loads((home / "dagster-ui.json").read_text())["dagster_home"] == str(instance_dir)
        data = _graphql(url, "{ assetNodes { assetKey { path } } }")
        keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {"files/ticks", "stream/ticks", "analytics/bars_1m", "ddl/duckdb"} <= keys
        data = _graphql(url, '{ assetNodeOrError(assetKey: {path: ["files", "ticks"]}) { ... on AssetNode {'
                             ' assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }')  # fmt: skip
        checks_found = {c["name"]: c["blocking"] for c in data["assetNodeOrError"]["assetChecksOrError"]["checks"]}
        assert checks_found == {"reject_rate": True, "no_duplicates": True, "engines_agree": True,
                                "sequence_gaps": False}  # fmt: skip
        data = _graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {"
                             " ... on RepositoryLocation { repositories { name schedules { name scheduleState { status } }"
                             " sensors { name sensorState { status } } } } } } } } }")  # fmt: skip
        repo = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"][0]
        assert {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]} == {
            "daily_import_schedule": "STOPPED", "hourly_analytics_schedule": "STOPPED"}  # fmt: skip
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["landing_files"] == "RUNNING" and sensors["report_failures"] == "RUNNING", sensors
        shot = home / "dagster-asset-graph.png"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--window-size=1600,1000", "--virtual-time-budget=20000"]  # fmt: skip
        r = subprocess.run([chromium, *flags, f"--screenshot={shot}", f"{url}/asset-groups"], capture_output=True,
                           timeout=120, cwd=tmp_path)  # fmt: skip
        assert r.returncode == 0 and shot.stat().st_size > 20_000, r.stderr[-1000:]
        keep = os.environ.get("WH_TEST_ARTIFACTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
        dom = subprocess.run([chromium, *flags, "--dump-dom", f"{url}/assets"], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path).stdout  # fmt: skip
        for name in ("bars_1m", "zscore_snapshot", "ticks", "ddl"):
            assert name in dom, name
        _two_runs_share_the_duckdb_pool(url, repo)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - t < 60 and not (home / "dagster-ui.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_replay_job_writes_the_ledger_and_the_leaderboard_follows(home: Path, landing: Path) -> None:
    import dagster as dg

    from warehouse.config import get_settings
    from warehouse.defs.resources import WarehouseResource
    from warehouse.sql.engines import close_embedded, open_engine

    assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]]).success
    assert materialize([["files", "ticks"]], DAY).success
    d = defs()
    job = d.resolve_job_def("replay")
    config = {"strategy": "zscore", "symbols": ["BTCUSDT"], "sweep": {"window": "30,60"},
              "params": {"notional": "20000"}, "start": "2020-02-22T00:00:00", "end": "2020-02-23T00:00:00"}  # fmt: skip
    result = job.execute_in_process(run_config={"ops": {"sim__ledger": {"config": config}}},
                                    resources={"warehouse": WarehouseResource()})  # fmt: skip
    assert result.success
    (event,) = result.get_asset_materialization_events()
    md = event.materialization.metadata
    assert md["traders"].value == 2 and md["ticks replayed"].value == 19_998
    assert "zscore-1" in md["per trader"].value and "zscore-2" in md["per trader"].value
    for trader in ("zscore-1", "zscore-2"):  # the equity curves, drawn
        assert Path(md[f"equity curve of {trader}"].value).stat().st_size > 10_000
    (nav,) = result.get_asset_check_evaluations()
    assert nav.check_name == "nav_reconciles" and nav.passed and nav.metadata["snapshots compared"].value >= 4
    board = [a for a in d.assets if isinstance(a, dg.AssetsDefinition)
             and dg.AssetKey(["analytics", "leaderboard_daily"]) in a.keys]  # fmt: skip
    out = dg.materialize(board, partition_key=DAY, resources={"warehouse": WarehouseResource()})
    assert out.success
    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, get_settings(), read_only=True)
        try:
            traders = eng.query("SELECT DISTINCT trader FROM wh.fills ORDER BY trader").column(0).to_pylist()
            assert traders == ["zscore-1", "zscore-2"], engine
            rows = eng.query("SELECT count(*) AS n FROM wh.leaderboard_daily").column("n")[0].as_py()
            assert rows == 2, engine
        finally:
            eng.close()
    close_embedded()


@pytest.mark.slow
def test_dg_launch_fills_a_day_and_runs_its_checks(home: Path, landing: Path, tmp_path: Path) -> None:
    """The command line way: `dg launch --assets … --partition …` against an instance of our own."""

    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", instance_dir)
    env = {**os.environ, "WH_HOME": str(home), "DAGSTER_HOME": str(instance_dir)}
    dg_exe = str(Path(sys.executable).parent / "dg")
    for args in (["--assets", "ddl/duckdb,ddl/clickhouse"], ["--assets", "files/ticks", "--partition", DAY]):
        r = subprocess.run([dg_exe, "launch", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and "RUN_SUCCESS" in r.stderr + r.stdout, (r.stdout + r.stderr)[-3000:]
    out = r.stderr + r.stdout
    for check in ("reject_rate", "no_duplicates", "engines_agree", "sequence_gaps"):
        assert f"Asset check '{check}' on 'files/ticks' passed" in out, check
    assert stored_ticks() == {"duckdb": 19_998, "clickhouse": 19_998}


@pytest.mark.slow
def test_wh_ingest_beside_a_materialization_loses_nothing(home: Path, landing: Path, broker: str, topic: str) -> None:
    """A day materializes in this process while `wh ingest` stores a stream into the same WH_HOME
    (it serves the embedded ClickHouse; DuckDB is opened per write by both, with lock waits):
    both sides end with every row, once."""
    import threading

    import polars as pl

    from warehouse.ingest.kafka import produce
    from warehouse.ingest.synthetic import FaultRates, SyntheticFeed

    assert materialize([["ddl", "duckdb"], ["ddl", "clickhouse"]]).success
    from warehouse.sql.engines import close_embedded

    close_embedded()
    feed = SyntheticFeed(ticks=60_000, seed=8, chunk=10_000, faults=FaultRates(bad=0.01),
                         bad_kinds=("non_positive", "crossed_book"))  # fmt: skip
    good = pl.concat([b.rows.select("_expected") for b in feed.batches()]).filter(pl.col("_expected").is_null()).height
    batches = list(feed.batches())
    produce(broker, topic, batches[:2])  # the topic exists before the group subscribes
    env = {**os.environ, "WH_HOME": str(home), "WH_KAFKA_BOOTSTRAP": broker}
    proc = subprocess.Popen([*WH, "ingest", "--topic", topic, "--group", f"g-{topic}", "--batch-rows", "5000",
                             "--batch-seconds", "0.3", "--stop-when-idle", "6"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and not line.startswith("assigned "):
            line = proc.stderr.readline()
        producer = threading.Thread(target=lambda: produce(broker, topic, batches[2:], rate=20_000))
        producer.start()
        result = materialize([["files", "ticks"]], DAY)
        producer.join()
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        rest = proc.communicate(timeout=300)[1]
        assert proc.returncode == 0, rest[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert stored_ticks() == {"duckdb": 19_998 + good, "clickhouse": 19_998 + good}


def test_the_daily_schedule_runs_yesterday_and_the_landing_sensor_skips_days_it_has_no_partition_for(
    home: Path, landing: Path
) -> None:
    from datetime import UTC, datetime

    import dagster as dg

    d = defs()
    sched = next(s for s in d.schedules or [] if s.name == "daily_import_schedule")
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(instance=instance, repository_def=d.get_repository_def(),
                                        scheduled_execution_time=datetime(2024, 5, 10, 0, 30, tzinfo=UTC))  # fmt: skip
        (req,) = sched.evaluate_tick(ctx).run_requests or []
        assert req.partition_key == "2024-05-09"
        (landing / "tardis_binance-futures_quotes_BTCUSDT_2019-12-31.csv").write_text("too early\n")
        sensor = next(s for s in d.sensors or [] if s.name == "landing_files")
        repo = d.get_repository_def()
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
        keys = sorted(r.partition_key for r in result.run_requests or [])
        assert keys == ["2020-02-22", "2020-02-22"]  # the sample's two files; the 2019 one is skipped, not fatal
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, repository_def=repo)
        )
        assert not again.run_requests  # nothing new


def test_the_watchdog_sensor_trips_the_kill_switch_of_a_runaway_replay(home: Path, tardis,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A replay of the real BTCUSDT day with two traders sending one order per 0.5 s of event
    time; after 120 s one of them sends one per 0.05 s (10 ×, still under the account's own
    limits). The `sim_watchdog` sensor, evaluated after every batch as the daemon would between
    batches, trips that trader's kill switch: it stops within a batch, the steady one trades on.
    Without the sensor the same replay runs to the end with nobody halted."""
    import dagster as dg

    from warehouse.config import get_settings
    from warehouse.defs.automation import sim_watchdog
    from warehouse.sim.broker import SELL, Limits
    from warehouse.sim.run import simulate
    from warehouse.sim.strategies import Strategy
    from warehouse.sim.watchdog import RunMonitor, runs_dir
    from warehouse.sql.engines import close_embedded, open_engine

    monkeypatch.setenv("WH_WATCHDOG_BUCKET_S", "5")
    r = subprocess.run([*WH, "import", *map(str, tardis)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    start_ns = 1582329601_000_000_000

    class Paced(Strategy):
        name = "paced"

        def __init__(self, burst_after: float | None = None) -> None:
            super().__init__()
            self.burst_at = start_ns + int(burst_after * 1e9) if burst_after is not None else None
            self.next = 0

        def on_quote(self, acct, q) -> None:  # an IOC limit far under the bid: an order, never a fill
            step = 50_000_000 if self.burst_at is not None and q.ts >= self.burst_at else 500_000_000
            if q.ts >= self.next:
                self.next = q.ts + step
                self._submit(acct, q.symbol, SELL, 0.001, order_type="limit", limit=q.ask * 2, tif="IOC")

    settings = get_settings()
    limits = Limits(max_orders_per_minute=1_000_000, max_notional_per_minute=1e15)
    since, until = datetime(2020, 2, 22, tzinfo=UTC), datetime(2020, 2, 23, tzinfo=UTC)

    def run(watch: bool):
        monitor = RunMonitor(runs_dir(settings), f"test-{watch}", settings.watchdog)
        reasons: list[str] = []

        def on_batch(_stats) -> None:
            if watch:
                reasons.append(str(sim_watchdog(dg.build_sensor_context()).skip_message))

        eng = open_engine("duckdb", settings, read_only=True, for_replay=True)
        try:
            result = simulate(eng, [("steady", Paced()), ("runaway", Paced(burst_after=120))], ["BTCUSDT"],
                              since, until, limits=limits, batch_rows=500, monitor=monitor, on_batch=on_batch)  # fmt: skip
        finally:
            eng.close()
            monitor.close()
        return result, reasons

    result, reasons = run(watch=True)
    steady, runaway = result.accounts["steady"], result.accounts["runaway"]
    assert steady.halted is None and len(steady.orders) > 350  # ≤ one per 0.5 s over the 226 s day (388)
    assert runaway.halted is not None and runaway.halted.startswith("watchdog: ") and " orders in 5 s" in runaway.halted
    assert len(runaway.orders) < 400  # 278: tripped in the burst's first bucket ("44 orders … against 8.3 ± 1.7")
    assert any("tripped 1 kill switch(es): runaway" in m for m in reasons), reasons
    assert any("1 running replay(s) within bounds" in m for m in reasons), reasons
    last = max(o.created_at for o in runaway.orders)
    assert start_ns + 120 * 10**9 < last < start_ns + 140 * 10**9  # stopped soon after the burst began
    assert result.stats.ticks == 19_998 and max(o.created_at for o in steady.orders) > start_ns + 220 * 10**9
    assert not list(runs_dir(settings).glob("*/"))  # a finished run leaves nothing to watch

    control, reasons = run(watch=False)
    assert control.accounts["runaway"].halted is None and len(control.accounts["runaway"].orders) > 1_200  # 1,403
    close_embedded()
