"""The one batch step every driver runs: source batches → sanitizer → one write batch → sinks.

`wh import`, `wh generate`, `wh demo` (files, synthetic feed: `run_import`), `wh ingest`
(the Kafka consumer) and the Dagster assets all call `BatchStep`; changing how a rule's
verdict is handled, or what a reject holds, is a change here and nowhere else. The
drivers differ only in how they write (an import overlaps writing with reading; the
stream retries a failing sink with backoff and stores offsets with the rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from warehouse.records import (
    GAP_SCHEMA,
    REJECT_SCHEMA,
    SCHEMA_FOR_KIND,
    TABLE_FOR_KIND,
    Kind,
    SourceBatch,
    bounded_raw_expr,
    conform,
)
from warehouse.sanitize import SanitizeConfig, Sanitizer
from warehouse.sinks.base import Sink, StreamPosition, WriteBatch, WriteCounts

_TS_NS_UTC = pl.Datetime("ns", "UTC")


def to_write_batch(
    kind: Kind, accepted: pl.DataFrame, rejects: pl.DataFrame, gaps: pl.DataFrame, source: str
) -> WriteBatch:
    """Sanitized rows, rejects and gap events → Arrow tables in the engines' schemas."""
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


def merge(batches: Iterable[WriteBatch]) -> WriteBatch:
    """Several write batches → one (tables concatenated; empty tables dropped)."""
    out: dict[str, list[pa.Table]] = {}
    for wb in batches:
        for table, data in wb.items():
            if data.num_rows:
                out.setdefault(table, []).append(data)
    return {t: pa.concat_tables(parts) for t, parts in out.items()}


@dataclass(kw_only=True)
class StepCounts:
    """What the step saw: rows read per kind, rejects per rule, gap events (summed by `add`)."""

    read: dict[str, int] = field(default_factory=dict)  # kind → rows read (malformed included)
    rejected: dict[str, int] = field(default_factory=dict)  # rule → rejects
    gaps: int = 0

    @property
    def rows_read(self) -> int:
        return sum(self.read.values())

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def add(self, other: StepCounts) -> None:
        for kind, n in other.read.items():
            self.read[kind] = self.read.get(kind, 0) + n
        for rule, n in other.rejected.items():
            self.rejected[rule] = self.rejected.get(rule, 0) + n
        self.gaps += other.gaps


@dataclass(kw_only=True)
class StepResult(StepCounts):
    batch: WriteBatch = field(default_factory=dict)


class BatchStep:
    """Stateful over the batches of one stream (a file, a feed, a topic): the stateful rules
    remember what they saw; `snapshot()` / `restore()` carry that across a restart."""

    def __init__(self, source: str, config: SanitizeConfig | None = None) -> None:
        from warehouse.sanitize.rules import warm_in_background

        self.source = source
        self.config = config
        self.sanitizers = {k: Sanitizer(k, config) for k in Kind}
        warm_in_background()  # the spike rule's kernel loads while the source opens

    def __call__(self, batches: Iterable[SourceBatch], extra: WriteBatch | None = None) -> StepResult:
        result = StepResult()
        parts: list[WriteBatch] = []
        for batch in batches:
            out = self.sanitizers[batch.kind].process(batch.rows)
            rejects = pl.concat([batch.rejects, out.rejects], how="diagonal_relaxed")
            key = str(batch.kind)
            result.read[key] = result.read.get(key, 0) + batch.rows.height + batch.rejects.height
            for rule, n in rejects.group_by("rule").len().iter_rows():
                result.rejected[rule] = result.rejected.get(rule, 0) + n
            result.gaps += out.gaps.height
            parts.append(to_write_batch(batch.kind, out.accepted, rejects, out.gaps, self.source))
            if batch.extra:
                parts.append(batch.extra)
        if extra:
            parts.append(extra)
        result.batch = merge(parts)
        return result

    def snapshot(self) -> dict[str, bytes]:
        return {
            f"{kind}/{name}": data for kind, san in self.sanitizers.items() for name, data in san.snapshot().items()
        }

    def restore(self, state: dict[str, bytes]) -> None:
        """Back to a snapshot; an empty one means: as if nothing had been seen."""
        if not state:
            self.sanitizers = {k: Sanitizer(k, self.config) for k in Kind}
            return
        for kind, san in self.sanitizers.items():
            prefix = f"{kind}/"
            san.restore({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


Writer = Callable[[Sink, WriteBatch, StreamPosition | None], WriteCounts]


def _plain_write(sink: Sink, wb: WriteBatch, position: StreamPosition | None) -> WriteCounts:
    return sink.write(wb, position)


def store(sinks: list[Sink], wb: WriteBatch, position: StreamPosition | None = None,
          write: Writer = _plain_write) -> list[WriteCounts]:  # fmt: skip
    """Write one batch to every sink, in order (the sink that keeps offsets last)."""
    return [write(sink, wb, position) for sink in sinks]
