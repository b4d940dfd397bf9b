"""The file driver: source batches (files, the synthetic feed) → the batch step → every sink,
with counts for the report. Used by `wh import`, `wh generate`, `wh demo` and Dagster."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from warehouse.pipeline.step import BatchStep, StepCounts, store
from warehouse.records import SourceBatch
from warehouse.sanitize import SanitizeConfig
from warehouse.sinks.base import Sink, WriteCounts


@dataclass
class ImportReport(StepCounts):
    """The step's counts over the whole import, plus what each sink stored."""

    source: str
    sinks: dict[str, WriteCounts] = field(default_factory=dict)
    seconds: float = 0.0

    def stored(self, sink: str) -> int:
        c = self.sinks.get(sink)
        return 0 if c is None else c.stored.get("market_ticks", 0) + c.stored.get("trades", 0)

    def already(self, sink: str) -> int:
        c = self.sinks.get(sink)
        return 0 if c is None else c.existing.get("market_ticks", 0) + c.existing.get("trades", 0)


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
    step = BatchStep(source, config)

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
                result = step([batch])
                report.add(result)
                if pending is not None:
                    finish(pending)
                pending = (pool.submit(store, sinks, result.batch), batch)
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
