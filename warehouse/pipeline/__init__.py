"""The pipeline: one batch step (step.py) that every driver runs, the file driver (run.py),
and declarative pipeline specs read from pipelines/*.yaml (spec.py).

    source batches → BatchStep (sanitize: rules, rejects, gaps → one write batch) → store(sinks)

Drivers: `run_import` (files, synthetic feed: wh import / generate / demo, Dagster's daily
assets) and the Kafka consumer (warehouse/ingest/consumer.py: wh ingest).
"""

from warehouse.pipeline.run import ImportReport, run_import
from warehouse.pipeline.step import BatchStep, StepResult, merge, store, to_write_batch

__all__ = ["BatchStep", "ImportReport", "StepResult", "merge", "run_import", "store", "to_write_batch"]
