"""`wh ingest` → Dagster: each committed batch becomes a runless materialization of the
stream's external asset (`stream/<spec>`, assets.py), so the Kafka path shows in the UI's
asset timeline while the exactly-once consumer stays a process of its own (a sensor-launched
run per micro-batch could not keep up with 50,000 rows / 2 s).

The events go straight into the instance's storage (`DagsterInstance.report_runless_asset_event`):
the UI does not have to be up for them to land, and a reporting failure never stops the
consumer (it is logged once, then retried with the next batch).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg


def batch_reporter(dagster_home: Path, spec_name: str, topic: str, group: str,
                   warn: Callable[[str], None]) -> Callable[[Any], None]:  # fmt: skip
    """A function of the consumer's IngestStats that reports the batch just committed."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    key = dg.AssetKey(["stream", spec_name])
    failed = False

    def report(stats: Any) -> None:
        nonlocal failed
        metadata: dict[str, Any] = {
            "batch": stats.batches,
            "rows in batch": stats.last_batch,
            "messages so far": stats.messages,
            "rejects so far": stats.rejected,
            "lag (messages)": -1 if stats.lag is None else int(stats.lag),
            "topic": dg.MetadataValue.text(topic),
            "group": dg.MetadataValue.text(group),
        }
        metadata |= {f"stored on {sink} so far": n for sink, n in stats.stored.items()}
        try:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))
            failed = False
        except Exception as exc:  # the consumer must not stop for the UI's sake
            if not failed:
                warn(f"cannot report batch {stats.batches} to Dagster at {dagster_home}: {exc}")
            failed = True

    return report
