"""Writing the trading ledger (wh.traders/orders/fills/portfolio_snapshots) on any engine.

A simulator run owns its traders: `write_ledger` replaces every row of the traders it is
given, so re-running a simulation (or a test) never doubles a fill. DuckDB does it in one
transaction; ClickHouse deletes (lightweight DELETE, visible at once) and then inserts —
a reader between the two sees the trader without rows, never twice.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.errors import QueryError
from warehouse.records import LEDGER_SCHEMAS
from warehouse.sql.engines import Engine


def write_ledger(engine: Engine, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Replace the given traders' rows; `tables` maps ledger table name → Arrow rows."""
    unknown = set(tables) - set(LEDGER_SCHEMAS)
    if unknown:
        raise QueryError(f"not ledger tables: {', '.join(sorted(unknown))}; use {', '.join(LEDGER_SCHEMAS)}")
    traders: set[str] = set()
    for data in tables.values():
        traders.update(pc.unique(data.column("trader")).to_pylist())
    conformed = {name: data.select(LEDGER_SCHEMAS[name].names).cast(LEDGER_SCHEMAS[name])
                 for name, data in tables.items()}  # fmt: skip
    ids = sorted(traders)
    # one transaction where the engine has them; elsewhere delete then insert — a reader in
    # between sees the trader without rows, never twice
    with engine.transaction():
        for name in LEDGER_SCHEMAS:
            engine.delete_in(f"wh.{name}", "trader", ids)
        for name, data in conformed.items():
            engine.insert(f"wh.{name}", data)
    return {name: data.num_rows for name, data in conformed.items()}
