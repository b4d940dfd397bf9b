"""Dagster drives the warehouse: the only package that imports dagster.

resources.py    the engines, sinks and cluster, configured like `wh` (no secret in any config)
assets.py       DDL per engine; per pipeline spec a daily import (files) or the stream (Kafka);
                bars, leaderboard, z-score snapshot; checks per day
automation.py   schedules and sensors, each with a deliberate default status
report.py       `wh ingest` → a runless materialization per committed batch
definitions.py  the code location (`defs`)
"""
