"""Every engine's tables, as `wh migrate` creates them, have the Arrow schemas of records.py."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse.records import LEDGER_SCHEMAS, MATERIALIZED_SCHEMAS, SCHEMAS

pytestmark = [pytest.mark.integration]


def test_engine_tables_match_the_arrow_schemas(engine) -> None:
    from warehouse.sql.migrate import migrate

    migrate(engine)
    for table, schema in {**SCHEMAS, **LEDGER_SCHEMAS, **MATERIALIZED_SCHEMAS}.items():
        got = engine.query(f"SELECT * FROM wh.{table} LIMIT 0").schema
        assert got.names == schema.names, (engine.name, table)
        for f in schema:
            g = got.field(f.name).type
            if pa.types.is_timestamp(f.type):
                assert pa.types.is_timestamp(g) and g.unit == "ns", (engine.name, table, f.name, g)
            elif pa.types.is_string(f.type):
                assert pa.types.is_string(g) or pa.types.is_large_string(g) or pa.types.is_dictionary(g)
            else:
                assert g == f.type, (engine.name, table, f.name, g)
