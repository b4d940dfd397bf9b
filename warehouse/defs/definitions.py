"""The code location: `dg list defs`, `dagster dev -w dagster_home/workspace.yaml`, `wh ui`."""

from __future__ import annotations

import dagster as dg

from warehouse.defs.assets import all_assets
from warehouse.defs.automation import all_automation
from warehouse.defs.resources import KafkaResource, WarehouseResource


def build() -> dg.Definitions:
    schedules, sensors, jobs = all_automation()
    return dg.Definitions(
        assets=all_assets(),
        schedules=schedules,
        sensors=sensors,
        jobs=jobs,
        resources={"warehouse": WarehouseResource(), "kafka": KafkaResource()},
    )


defs = build()
