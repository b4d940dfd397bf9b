"""wh — a market-data warehouse toolkit.

Data flows one way through the package, and the tree reads in that order:

    ingest/    raw bytes → typed records (Tardis CSV, mapped CSV/Parquet, synthetic feed)
    sanitize/  vectorized rules: bad ticks → rejects (with rule and raw payload), gaps → events
    sinks/     one Sink protocol; DuckDB and ClickHouse (embedded chdb or a server)
    sql/       DDL migrations, named queries, ClickHouse → DuckDB translation (sqlglot)
    analytics/ typed entry points that run named queries and return Arrow tables
    replay/    history back out in strict event-time order, in constant memory
    sim/       the simulator core: costs, broker/accounts, strategies; fills into the ledger
    bench/     benchmarks against a ceiling measured in the same run (figures, no printing)
    cli/       the `wh` command, thin over the above: parses arguments, calls the package, prints

`pipeline.py` wires source → sanitizer → sinks for one import.
"""

from __future__ import annotations

__version__ = "0.1.0"
