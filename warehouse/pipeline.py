"""One import: source batches → sanitizer → every sink, with counts for the report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from warehouse.ingest.files import SourceBatch
from warehouse.records import (
    GAP_SCHEMA,
    REJECT_SCHEMA,
    SCHEMA_FOR_KIND,
    TABLE_FOR_KIND,
    Kind,
    bounded_raw_expr,
    conform,
)
from warehouse.sanitize import SanitizeConfig, Sanitizer
from warehouse.sinks.base import Sink, WriteBatch, WriteCounts

_TS_NS_UTC = pl.Datetime("ns", "UTC")


@dataclass
class ImportReport:
    source: str
    read: dict[str, int] = field(default_factory=dict)  # kind → rows read (incl. malformed)
    rejected: dict[str, int] = field(default_factory=dict)  # rule → count
    gaps: int = 0
    sinks: dict[str, WriteCounts] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_read(self) -> int:
        return sum(self.read.values())

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def stored(self, sink: str) -> int:
        c = self.sinks.get(sink)
        return 0 if c is None else c.stored.get("market_ticks", 0) + c.stored.get("trades", 0)

    def already(self, sink: str) -> int:
        c = self.sinks.get(sink)
        return 0 if c is None else c.existing.get("market_ticks", 0) + c.existing.get("trades", 0)


def to_write_batch(
    kind: Kind, accepted: pl.DataFrame, rejects: pl.DataFrame, gaps: pl.DataFrame, source: str
) -> WriteBatch:
    now = time.time_ns()
    ticks = conform(
        accepted.with_columns(pl.col("timestamp").cast(_TS_NS_UTC), pl.col("received_at").cast(_TS_NS_UTC)),
        SCHEMA_FOR_KIND[kind],
    )
    rej = conform(
        rejects.select(
            pl.lit(now).cast(_TS_NS_UTC).alias("rejected_at"),
            (pl.col("_source") if "_source" in rejects.columns else pl.lit(source)).alias("source"),
            pl.col("_offset").alias("source_offset"),
            pl.lit(str(kind)).alias("kind"),
            "rule",
            "reason",
            "exchange",
            "symbol",
            pl.col("timestamp").cast(_TS_NS_UTC),
            bounded_raw_expr("_raw").alias("raw"),
        ),
        REJECT_SCHEMA,
    )
    gap = conform(
        gaps.select(
            pl.lit(now).cast(_TS_NS_UTC).alias("detected_at"),
            pl.lit(source).alias("source"),
            pl.lit(str(kind)).alias("kind"),
            "exchange",
            "symbol",
            "from_seq",
            "to_seq",
            "missing",
            pl.col("timestamp").cast(_TS_NS_UTC),
        ),
        GAP_SCHEMA,
    )
    return {TABLE_FOR_KIND[kind]: ticks, "rejects": rej, "gaps": gap}


def _write_all(sinks: list[Sink], wb: WriteBatch) -> list[WriteCounts]:
    return [sink.write(wb) for sink in sinks]


def run_import(
    batches: Iterable[SourceBatch],
    *,
    source: str,
    sinks: list[Sink],
    config: SanitizeConfig | None = None,
    on_progress: Callable[[SourceBatch, ImportReport], None] | None = None,
) -> ImportReport:
    """Sanitize and store every batch on every sink; all sinks see the same rows.

    Writing batch k (one writer thread, the engines release the GIL) overlaps reading and
    sanitizing batch k+1; at most two batches are in memory. A failure stops the import
    after the batches before it are stored — re-running it is safe (writes are idempotent).
    """
    start = time.perf_counter()
    report = ImportReport(source, sinks={s.name: WriteCounts() for s in sinks})
    sanitizers: dict[Kind, Sanitizer] = {}

    def finish(pending: tuple[Future[list[WriteCounts]], SourceBatch]) -> None:
        future, done_batch = pending
        for sink, counts in zip(sinks, future.result(), strict=True):
            report.sinks[sink.name].add(counts)
        if on_progress is not None:
            on_progress(done_batch, report)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wh-writer") as pool:
        pending: tuple[Future[list[WriteCounts]], SourceBatch] | None = None
        try:
            for batch in batches:
                kind = batch.kind
                san = sanitizers.setdefault(kind, Sanitizer(kind, config))
                result = san.process(batch.rows)
                rejects = pl.concat([batch.rejects, result.rejects], how="diagonal_relaxed")
                report.read[str(kind)] = report.read.get(str(kind), 0) + batch.rows.height + batch.rejects.height
                for rule, n in rejects.group_by("rule").len().iter_rows():
                    report.rejected[rule] = report.rejected.get(rule, 0) + n
                report.gaps += result.gaps.height
                wb = to_write_batch(kind, result.accepted, rejects, result.gaps, source)
                if pending is not None:
                    finish(pending)
                pending = (pool.submit(_write_all, sinks, wb), batch)
            if pending is not None:
                finish(pending)
                pending = None
        finally:
            if pending is not None:  # an error upstream: let the write in flight complete
                pending[0].exception()
    for sink in sinks:
        sink.flush()
    report.seconds = time.perf_counter() - start
    return report
