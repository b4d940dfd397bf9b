"""Schedules and sensors, each with a deliberate default status.

    landing_<spec>      RUNNING  a run per landing file that is new or changed (cursor: path → mtime),
                                 for the file's day; nothing happens while the folder is quiet
    daily_import        STOPPED  yesterday's partition of every file spec's ticks at 00:30 UTC (for
                                 feeds that land late or in bulk; the landing sensors cover the rest)
    hourly_analytics    STOPPED  the z-score snapshot and today's bars, hourly (turn on in production)
    report_failures     RUNNING  a failed run is logged with its step and error, and written to
                                 $WH_HOME/dagster-failures.log for `wh status`-style tooling
    sim_watchdog        RUNNING  every running replay (the `replay` job, `wh replay`): a trader whose
                                 order or fill rate leaves the statistical bound has its kill
                                 switch tripped (warehouse/sim/watchdog.py); idle without replays
Declarative automation (`eager`) keeps bars_1m and leaderboard_daily behind their upstream
days; Dagster's automation sensor for it starts STOPPED (turn it on in the UI).
"""

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from warehouse.config import get_settings
from warehouse.pipeline.spec import PipelineSpec, all_specs


def with_checks(*keys: dg.AssetKey) -> dg.AssetSelection:
    """The assets and their checks: a job of the assets alone would not run the checks (and a
    blocking check that does not run blocks nothing)."""
    return dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks_for_assets(*keys)


def landing_sensor(spec: PipelineSpec) -> dg.SensorDefinition:
    key = dg.AssetKey([spec.name, "ticks"])

    @dg.sensor(name=f"landing_{spec.name}", minimum_interval_seconds=30, asset_selection=with_checks(key),
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"A run per new or changed file of `{spec.name}`'s landing folder, for its day")  # fmt: skip
    def _sensor(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
        from warehouse.defs.assets import file_day

        assert spec.source.files is not None
        settings = get_settings()
        first, last = date.fromisoformat(settings.dagster_start), datetime.now(UTC).date() + timedelta(days=1)
        seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        now: dict[str, float] = {}
        for path in spec.source.files.files(settings.home):
            mtime = path.stat().st_mtime
            now[str(path)] = mtime
            if seen.get(str(path)) == mtime:
                continue
            day = file_day(path)
            if not first <= day <= last:  # no such partition: say so once, keep watching the rest
                context.log.warning(f"{path.name}: its day {day} is outside the partitions {first} … {last} "
                                    "(WH_DAGSTER_START); not imported")  # fmt: skip
                continue
            yield dg.RunRequest(run_key=f"{path}:{mtime}", partition_key=day.isoformat(), tags={"wh/file": path.name})
        context.update_cursor(json.dumps(now, sort_keys=True))

    return _sensor


def schedules(file_assets: list[dg.AssetKey]) -> list[Any]:
    out: list[Any] = []
    if file_assets:
        job = dg.define_asset_job("daily_import", selection=with_checks(*file_assets),
                                  description="One UTC day of every file spec's landing folder")  # fmt: skip

        @dg.schedule(name="daily_import_schedule", job=job, cron_schedule="30 0 * * *", execution_timezone="UTC",
                     default_status=dg.DefaultScheduleStatus.STOPPED,
                     description="Yesterday's partition at 00:30 UTC (the partitions reach today, "
                                 "for files that land early)")  # fmt: skip
        def daily_import_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
            when = context.scheduled_execution_time or datetime.now(UTC)
            day = (when.astimezone(UTC) - timedelta(days=1)).date().isoformat()
            return dg.RunRequest(run_key=f"daily_import:{day}", partition_key=day)

        out.append(daily_import_schedule)
    snapshot = dg.define_asset_job("hourly_analytics", selection=dg.AssetSelection.assets(["analytics",
                                                                                          "zscore_snapshot"]))  # fmt: skip
    out.append(dg.ScheduleDefinition(job=snapshot, cron_schedule="5 * * * *", execution_timezone="UTC",
                                     default_status=dg.DefaultScheduleStatus.STOPPED,
                                     description="The z-score snapshot every hour"))  # fmt: skip
    return out


@dg.run_failure_sensor(name="report_failures", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Log each failed run and append it to $WH_HOME/dagster-failures.log")  # fmt: skip
def report_failures(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "failed"
    line = {"at": datetime.now(UTC).isoformat(), "run_id": run.run_id, "job": run.job_name,
            "partition": run.tags.get("dagster/partition"), "error": message[:2000]}  # fmt: skip
    context.log.error(f"run {run.run_id} ({run.job_name}) failed: {message[:500]}")
    path = get_settings().home / "dagster-failures.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")


@dg.sensor(name="sim_watchdog", minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Trips a replaying trader's kill switch when its order or fill rate per bucket of "
                       "event time passes mean + k·σ of the buckets before (WH_WATCHDOG_*)")  # fmt: skip
def sim_watchdog(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    from warehouse.sim.watchdog import patrol

    watched, trips = patrol(get_settings())
    for t in trips:
        context.log.warning(f"kill switch tripped for {t.trader} in {t.run}: {t.reason}")
    if trips:
        return dg.SkipReason(f"tripped {len(trips)} kill switch(es): "
                             + "; ".join(f"{t.trader} ({t.run}): {t.reason}" for t in trips))  # fmt: skip
    return dg.SkipReason(f"{watched} running replay(s) within bounds" if watched else "no replay running")


def all_automation() -> tuple[list[Any], list[Any], list[Any]]:
    """(schedules, sensors, jobs)"""
    specs = [spec for _, spec in all_specs()]
    files = [spec for spec in specs if spec.source.files is not None]
    scheds = schedules([dg.AssetKey([s.name, "ticks"]) for s in files])
    sensors = [landing_sensor(s) for s in files] + [report_failures, sim_watchdog]
    replay = dg.define_asset_job("replay", selection=with_checks(dg.AssetKey(["sim", "ledger"])),
                                 description="A replay through the simulator (config: strategy, params, sweep, "
                                             "symbols, range); the ledger into the warehouse")  # fmt: skip
    return scheds, sensors, [replay]
