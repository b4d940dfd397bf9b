"""The warehouse as Dagster assets, built from the pipeline specs in pipelines/.

    ddl/<engine>                     the migrations of ddl/<engine>/ (DuckDB, ClickHouse; QuestDB when configured)
    landing/<spec>  → <spec>/ticks   a file spec: its landing folder (external) and the day's import,
                                     daily partitions, with blocking checks per day
    kafka/<topic>   → stream/<spec>  a Kafka spec: the topic and what `wh ingest` stores (external:
                                     each committed batch is a runless materialization, warehouse/defs/report.py)
    analytics/bars_1m, analytics/leaderboard_daily
                                     `wh refresh` per day and engine, downstream of every tick asset
    analytics/zscore_snapshot        the newest z-score of the most active instruments

Adding a YAML to pipelines/ adds its assets. Every asset that writes DuckDB is in the
`wh_duckdb` pool (dagster_home/dagster.yaml limits it to 1): DuckDB takes one writing
process per file. The pool does not know about `wh ingest`, whose own lock wait still applies.
"""

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from warehouse.config import get_settings
from warehouse.defs.resources import WarehouseResource
from warehouse.pipeline.spec import PipelineSpec, all_specs

POOL = "wh_duckdb"
COLD = ("duckdb", "clickhouse")  # the engines a day is reconciled across
_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def daily() -> dg.DailyPartitionsDefinition:
    """UTC days from WH_DAGSTER_START (default 2020-01-01) to today."""
    return dg.DailyPartitionsDefinition(start_date=get_settings().dagster_start, timezone="UTC", end_offset=1)


def bounds(day: date) -> dict[str, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"since": start, "until": start + timedelta(days=1)}


def file_day(path: Path) -> date:
    """The UTC day a landing file belongs to: a YYYY-MM-DD in its name (Tardis names its files
    by day), else the day it was last modified."""
    m = _DAY_IN_NAME.search(path.name)
    if m:
        try:
            return date.fromisoformat(m.group(1))
        except ValueError:
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).date()


def files_of_day(spec: PipelineSpec, home: Path, day: date) -> list[Path]:
    assert spec.source.files is not None
    return [p for p in spec.source.files.files(home) if file_day(p) == day]


def md_table(rows: list[dict[str, Any]], empty: str = "(none)") -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md(empty)
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols) + " |"
              for r in rows]  # fmt: skip
    return dg.MetadataValue.md("\n".join(lines))


def picture(path: Path, title: str) -> dg.MetadataValue:
    """A chart's PNG as a path in the materialization's metadata. (Inline base64 images were
    tried: the UI's markdown renderer keeps only http(s) image URLs, and the event log would
    carry every image; the files stay under $WH_HOME/plots/dagster/.)"""
    return dg.MetadataValue.path(str(path))


def plot_path(warehouse: WarehouseResource, name: str) -> Path:
    folder = warehouse.settings().home / "plots" / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"


def day_figures(warehouse: WarehouseResource, engine: str, day: date) -> dict[str, int]:
    from warehouse.sql import queries

    with warehouse.engine(engine, read_only=True) as eng:
        row = queries.load("day_check", internal=True).run(eng, bounds(day)).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


# -- DDL ------------------------------------------------------------------------------------------


def ddl_asset(engine: str) -> dg.AssetsDefinition:
    @dg.asset(key=["ddl", engine], group_name="ddl", kinds={engine}, pool=POOL if engine == "duckdb" else None,
              description=f"The migrations of ddl/{engine}/ applied (checksums kept; an edited applied file "
                          "is refused).")  # fmt: skip
    def _ddl(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        from warehouse.sql.migrate import applied, migrate

        with warehouse.engine(engine) as eng:
            now = migrate(eng)
            everything = applied(eng)
        context.log.info(f"{engine}: applied {', '.join(now) or 'nothing (up to date)'}")
        return dg.MaterializeResult(metadata={
            "applied now": dg.MetadataValue.md("\n".join(f"- {n}" for n in now) or "nothing: up to date"),
            "migrations": len(everything),
        })  # fmt: skip

    return _ddl


# -- files: the landing folder and the day's import ------------------------------------------------

CHECKS = {
    "reject_rate": "rejects / (rows stored + rejects) of the day stays under WH_MAX_REJECT_RATE (default 5 %)",
    "no_duplicates": "every stored tick of the day is one dedup key (count == distinct), on every engine",
    "engines_agree": "DuckDB and ClickHouse hold the same ticks, rejects and gaps for the day",
    "sequence_gaps": "sequence gaps detected in the day's ticks (a warning: the venue skipped numbers)",
}


def landing_assets(spec: PipelineSpec) -> list[Any]:
    src = spec.source.files
    assert src is not None
    landing = dg.AssetSpec(key=["landing", spec.name], group_name=spec.name, kinds={"file"},
                           description=f"{spec.description or spec.name}: files matching {src.path} under WH_HOME "
                                       "(the landing sensor launches a run per new or changed file)")  # fmt: skip
    key = dg.AssetKey([spec.name, "ticks"])
    engines = [s for s in spec.sinks if s in COLD]
    if not engines:
        from warehouse.errors import ConfigError

        raise ConfigError(f"pipeline {spec.name}: Dagster's daily import checks its days on DuckDB or ClickHouse; "
                          "add one of them to the spec's sinks")  # fmt: skip

    @dg.asset(key=key, deps=[landing.key, *(dg.AssetKey(["ddl", s]) for s in spec.sinks)], partitions_def=daily(),
              group_name=spec.name, kinds=set(spec.sinks), pool=POOL if "duckdb" in spec.sinks else None,
              freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
              description=f"One UTC day of `{spec.name}`'s files imported into {', '.join(spec.sinks)} "
                          "(idempotent: re-running a day adds nothing), with its checks.",
              check_specs=[dg.AssetCheckSpec(name, asset=key, description=text, blocking=name != "sequence_gaps")
                           for name, text in CHECKS.items()])  # fmt: skip
    def ticks(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
        from warehouse.pipeline import run_import
        from warehouse.pipeline.sources import spec_file_batches
        from warehouse.sql import queries

        day = date.fromisoformat(context.partition_key)
        settings = warehouse.settings()
        files = files_of_day(spec, settings.home, day)
        context.log.info(f"{spec.name} {day}: {len(files)} file(s)")
        read = stored = rejected = gaps = 0
        per_file = []
        with warehouse.sinks(list(spec.sinks)) as sinks:
            for path in files:
                report = run_import(spec_file_batches(src, path), source=str(path.resolve()), sinks=sinks,
                                    config=spec.sanitize.config())  # fmt: skip
                new = max(report.stored(s) for s in spec.sinks)
                read, stored, rejected, gaps = (read + report.rows_read, stored + new,
                                                rejected + report.rows_rejected, gaps + report.gaps)  # fmt: skip
                per_file.append({"file": path.name, "rows read": report.rows_read, "stored (new)": new,
                                 "rejected": report.rows_rejected})  # fmt: skip
        figures: dict[str, dict[str, int]] = {str(e): day_figures(warehouse, e, day) for e in engines}
        first = figures[engines[0]] if engines else {}
        with warehouse.engine(engines[0], read_only=True) as eng:
            by_rule = queries.load("day_rejects_by_rule", internal=True).run(eng, bounds(day)).to_pylist()
            top = queries.load("day_top_symbols", internal=True).run(eng, {**bounds(day), "limit": 10}).to_pylist()
        yield dg.MaterializeResult(metadata={
            "files": len(files),
            "rows read": read,
            "rows stored (new)": stored,
            "rejected (this run)": rejected,
            "quotes in the day": first.get("quotes", 0),
            "trades in the day": first.get("trades", 0),
            "rejects in the day": first.get("rejects", 0),
            "files imported": md_table(per_file, "no file of this day in the landing folder"),
            "rejects per rule": md_table(by_rule, "no rejects"),
            "most active instruments": md_table(top, "no quotes"),
        })  # fmt: skip
        yield from day_checks(key, figures, settings.max_reject_rate)

    return [landing, ticks]


def day_checks(key: dg.AssetKey, figures: dict[str, dict[str, int]], max_rate: float) -> Iterator[dg.AssetCheckResult]:
    """The checks of one day from each engine's `day_check` figures."""
    any_engine = next(iter(figures.values()), {})
    ticks = any_engine.get("quotes", 0) + any_engine.get("trades", 0)
    rejects = any_engine.get("rejects", 0)
    rate = rejects / (ticks + rejects) if ticks + rejects else 0.0
    yield dg.AssetCheckResult(asset_key=key, check_name="reject_rate", passed=rate <= max_rate,
                              metadata={"reject rate": rate, "limit": max_rate, "rejects": rejects,
                                        "ticks": ticks})  # fmt: skip
    dup = {e: (f["quotes"] - f["quote_keys"]) + (f["trades"] - f["trade_keys"]) for e, f in figures.items()}
    yield dg.AssetCheckResult(asset_key=key, check_name="no_duplicates", passed=not any(dup.values()),
                              metadata={f"duplicates on {e}": n for e, n in dup.items()})  # fmt: skip
    seen = {e: (f["quotes"], f["trades"], f["rejects"], f["gaps"]) for e, f in figures.items()}
    yield dg.AssetCheckResult(asset_key=key, check_name="engines_agree", passed=len(set(seen.values())) <= 1,
                              metadata={e: dg.MetadataValue.text(f"quotes {q:,}, trades {t:,}, rejects {r:,}, gaps {g:,}")
                                        for e, (q, t, r, g) in seen.items()})  # fmt: skip
    gaps = any_engine.get("gaps", 0)
    yield dg.AssetCheckResult(asset_key=key, check_name="sequence_gaps", passed=gaps == 0,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"gap events": gaps})  # fmt: skip


# -- Kafka: what `wh ingest` does, as external assets ---------------------------------------------


def stream_assets(spec: PipelineSpec) -> list[dg.AssetSpec]:
    src = spec.source.stream
    assert src is not None
    out: list[dg.AssetSpec] = []
    cap = spec.source.capture
    if cap is not None:  # the live edge: `wh capture --pipeline` feeds the topic
        out.append(dg.AssetSpec(key=["capture", spec.name], group_name=spec.name, kinds={"websocket"},
                                description=f"`wh capture --pipeline {spec.name}`: {cap.exchange} "
                                            f"{', '.join(cap.channels)} of {', '.join(cap.symbols)} → Kafka "
                                            f"topic {cap.topic}; outages in wh.capture_gaps"))  # fmt: skip
    topic = dg.AssetSpec(key=["kafka", src.topic], group_name=spec.name, kinds={"kafka"},
                         deps=[a.key for a in out],
                         description=f"Kafka topic {src.topic} (JSON ticks, key = symbol)")  # fmt: skip
    stream = dg.AssetSpec(key=["stream", spec.name], group_name=spec.name, kinds={"kafka", *spec.sinks},
                          # a running consumer reports every few seconds: 2 min without a batch is a warning
                          freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=10),
                                                                          warn_window=timedelta(minutes=2)),
                          deps=[topic.key, *(dg.AssetKey(["ddl", s]) for s in spec.sinks if s in (*COLD, "questdb"))],
                          description=f"`wh ingest --pipeline {spec.name}`: group {src.group} stores the topic into "
                                      f"{', '.join(spec.sinks)} exactly once; each committed batch is reported here "
                                      "(rows, rejects, offsets, lag) while `wh ui` runs")  # fmt: skip
    return [*out, topic, stream]


# -- analytics ------------------------------------------------------------------------------------


def analytics_assets(upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    ledger = dg.AssetKey(["sim", "ledger"])

    def refresh_asset(name: str, deps: list[dg.AssetKey], what: str) -> dg.AssetsDefinition:
        @dg.asset(key=["analytics", name], deps=deps, partitions_def=daily(), group_name="analytics",
                  kinds={"duckdb", "clickhouse"}, pool=POOL, description=what,
                  automation_condition=dg.AutomationCondition.eager())  # fmt: skip
        def _refresh(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
            from warehouse.analytics.materialize import refresh

            day = date.fromisoformat(context.partition_key)
            rows = {}
            for engine in COLD:
                with warehouse.engine(engine) as eng:
                    rows[engine] = refresh(eng, name, day)
            return dg.MaterializeResult(
                metadata={f"rows on {e}": n for e, n in rows.items()} | {"rows": rows["duckdb"]}
            )

        return _refresh

    bars = refresh_asset("bars_1m", upstream, "1-minute OHLCV bars of every instrument's trades, one UTC day "
                         "(wh refresh bars_1m; re-running a day replaces it)")  # fmt: skip
    board = refresh_asset("leaderboard_daily", [ledger], "Traders ranked by the day's P&L from the ledger "
                          "(wh refresh leaderboard_daily)")  # fmt: skip

    @dg.asset(key=["analytics", "zscore_snapshot"], deps=upstream, group_name="analytics", kinds={"duckdb"},
              freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2),
                                                              warn_window=timedelta(minutes=70)),
              description="The newest rolling z-score (60 quotes) of the 10 most active instruments (DuckDB)")  # fmt: skip
    def zscore_snapshot(warehouse: WarehouseResource) -> dg.MaterializeResult:
        from warehouse import analytics

        out = []
        with warehouse.engine("duckdb", read_only=True) as eng:
            for row in analytics.run(eng, "symbols", limit=100_000).to_pylist():
                out.append(row)
            out = sorted(out, key=lambda r: -int(r["quotes"]))[:10]
            rows = []
            for r in out:
                z = analytics.zscore(eng, r["symbol"], exchange=r["exchange"], limit=1).to_pylist()
                if z:
                    rows.append({"exchange": r["exchange"], "symbol": r["symbol"], "at": str(z[0]["timestamp"]),
                                 "bid": z[0]["bid"], "z": "—" if z[0]["z_score"] is None else f"{z[0]['z_score']:.3f}"})  # fmt: skip
            pictures: dict[str, Any] = {}
            if out:
                from warehouse.analytics.charts import zscore_chart

                top = out[0]
                series = analytics.zscore(eng, top["symbol"], exchange=top["exchange"], limit=2_000)
                png = zscore_chart(
                    series, symbol=top["symbol"], window=60, path=plot_path(warehouse, f"zscore_{top['symbol']}")
                )
                pictures[f"z-score of {top['symbol']}"] = picture(png, f"z-score {top['symbol']}")
        return dg.MaterializeResult(metadata={"instruments": len(rows), "newest z-scores": md_table(rows, "no quotes"),
                                              **pictures})  # fmt: skip

    return [bars, board, zscore_snapshot]


class ReplayConfig(dg.Config):
    """`wh replay` as run config (the launchpad of the `replay` job). Values of `params` and the
    comma lists of `sweep` are numbers when they read as numbers."""

    strategy: str = "zscore"
    params: dict[str, str] = Field(default_factory=dict)
    sweep: dict[str, str] = Field(default_factory=dict)  # NAME: "V1,V2,…" — one trader per combination
    symbols: list[str] = Field(default_factory=lambda: ["ALL"])
    start: str = "2020-02-22T00:00:00+00:00"  # UTC, inclusive
    end: str = "2020-02-23T00:00:00+00:00"  # UTC, exclusive
    source: str = "duckdb"  # where history is read
    write_to: list[str] = Field(default_factory=lambda: ["duckdb", "clickhouse"])
    trader: str | None = None
    cash: float = 1_000_000.0


def nav_check(key: dg.AssetKey, warehouse: WarehouseResource, engines: list[str],
              snapshots: list[dict[str, Any]], samples: int = 50) -> dg.AssetCheckResult:  # fmt: skip
    """The simulator's NAV at (up to `samples` of) its snapshots against the warehouse's own
    (queries/trader_rank.sql: initial cash + cash flows + positions marked to its quotes) in each
    engine the ledger went to: within 1e-9 of the NAV."""
    from warehouse.sql import queries

    step = max(1, len(snapshots) // samples)
    worst, checked = 0.0, 0
    for engine in engines:
        with warehouse.engine(engine, read_only=True) as eng:
            for snap in snapshots[::step]:
                rank = queries.load("trader_rank").run(eng, {"trader": snap["trader"], "at": snap["timestamp"]})
                nav = rank.column("nav")[0].as_py()
                worst = max(worst, abs(nav - snap["nav"]) / max(abs(snap["nav"]), 1.0))
                checked += 1
    return dg.AssetCheckResult(asset_key=key, check_name="nav_reconciles", passed=checked > 0 and worst <= 1e-9,
                               metadata={"snapshots compared": checked, "worst relative difference": worst,
                                         "note": "no snapshot to compare" if not checked else ""})  # fmt: skip


def ledger_asset(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    key = dg.AssetKey(["sim", "ledger"])

    @dg.asset(key=key, deps=upstream, group_name="analytics", kinds={"duckdb", "clickhouse"},
              check_specs=[dg.AssetCheckSpec("nav_reconciles", asset=key, blocking=True,
                                             description="the warehouse's NAV equals the simulator's at its snapshots")],
              pool=POOL, description="Orders, fills and NAV snapshots of a replay through the simulator "
                                     "(the `replay` job's config: strategy, params, sweep, symbols, range; as `wh replay`)")  # fmt: skip
    def ledger(context: dg.AssetExecutionContext, config: ReplayConfig, warehouse: WarehouseResource) -> Iterator[Any]:
        from warehouse.sim.run import summary
        from warehouse.sim.session import make_traders, parse_value, replay_session

        if not config.write_to:
            raise dg.Failure("write_to names no engine: the ledger asset is the ledger written to the warehouse")
        params = {k: parse_value(v) for k, v in config.params.items()}
        sweep = {k: [parse_value(x.strip()) for x in v.split(",") if x.strip()] for k, v in config.sweep.items()}
        traders = make_traders(config.strategy, params, sweep, config.trader)
        since, until = (datetime.fromisoformat(t) for t in (config.start, config.end))
        since, until = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
        result, tables = replay_session(warehouse.settings(), traders, config.symbols, since, until,
                                        source=config.source, write_to=config.write_to, cash=config.cash,
                                        run=f"dagster-{context.run.run_id}")  # fmt: skip
        rows = [{k: (f"{v:,.2f}" if isinstance(v, float) else v) for k, v in r.items() if k != "rejects"}
                for r in summary(result)]  # fmt: skip
        context.log.info(f"replayed {result.stats.ticks:,} ticks into {len(traders)} trader(s)")
        pictures: dict[str, Any] = {}
        if config.write_to:
            from warehouse import analytics
            from warehouse.analytics.charts import equity_chart

            with warehouse.engine(config.write_to[0], read_only=True) as eng:
                for name, _ in traders[:3]:
                    step = analytics.equity_interval(eng, name)
                    curve = analytics.run(eng, "equity_curve", trader=name, interval=step)
                    png = equity_chart(curve, trader=name, path=plot_path(warehouse, f"equity_{name}"), interval=step)
                    pictures[f"equity curve of {name}"] = picture(png, f"equity {name}")
        yield dg.MaterializeResult(metadata={
            "traders": len(traders), "ticks replayed": result.stats.ticks,
            "fills": tables["fills"].num_rows, "orders": tables["orders"].num_rows,
            "per trader": md_table(rows, "no trader"), **pictures,
        })  # fmt: skip
        yield nav_check(key, warehouse, list(config.write_to), tables["portfolio_snapshots"].to_pylist())

    return ledger


def all_assets() -> list[Any]:
    from warehouse.config import get_questdb_settings

    engines = list(COLD) + (["questdb"] if get_questdb_settings().client_conf is not None else [])
    out: list[Any] = [ddl_asset(e) for e in engines]
    upstream: list[dg.AssetKey] = []
    for _, spec in all_specs():
        if spec.source.files is not None:
            out += landing_assets(spec)
            upstream.append(dg.AssetKey([spec.name, "ticks"]))
        else:
            out += stream_assets(spec)
            upstream.append(dg.AssetKey(["stream", spec.name]))
    out.append(ledger_asset(upstream))
    out += analytics_assets(upstream)
    return out
