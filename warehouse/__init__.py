"""wh — a market-data warehouse toolkit.

Data flows one way through the package, and the tree reads in that order:

    ingest/    raw bytes → typed records (Tardis CSV, mapped CSV/Parquet, synthetic feed)
    sanitize/  vectorized rules: bad ticks → rejects (with rule and raw payload), gaps → events
    sinks/     one Sink protocol; DuckDB and ClickHouse (embedded chdb or a server)
    sql/       DDL migrations, named queries, ClickHouse → DuckDB translation (sqlglot)
    analytics/ typed entry points that run named queries and return Arrow tables
    replay/    history back out in strict event-time order, in constant memory
    sim/       the simulator core: costs, broker/accounts, strategies; fills into the ledger
    cli/       the `wh` command, thin over the above

`pipeline.py` wires source → sanitizer → sinks for one import.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

# polars allocates with jemalloc, which by default keeps freed pages for 10 s: a replay
# frees a 250 k-tick slice every ~70 ms, so its RSS carried what it had freed over the last
# 10 s. Returning pages after 1 s (measured: peak RSS +27-34 MB from 1 M to 20 M replayed
# ticks instead of +36-67 MB, same speed; 0 s costs 45 % of the speed). Read once, when
# polars loads; a value the user set wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")
