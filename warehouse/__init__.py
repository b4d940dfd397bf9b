"""wh — a market-data warehouse toolkit.

Data flows one way through the package, and the tree reads in that order:

    ingest/    raw bytes → typed batches (Tardis CSV, mapped CSV/Parquet, synthetic feed, Kafka)
    sanitize/  vectorized rules: bad ticks → rejects (with rule and raw payload), gaps → events
    pipeline/  the one batch step every driver runs (sanitize → write batch → sinks); specs
    sinks/     one Sink protocol; DuckDB and ClickHouse (embedded chdb or a server)
    sql/       engine adapters, DDL migrations, named queries, ClickHouse → DuckDB translation
    analytics/ typed entry points that run named queries and return Arrow tables
    replay/    history back out in strict event-time order, in constant memory
    sim/       the simulator core: costs, broker/accounts, strategies; fills into the ledger
    servers/   real QuestDB and Apache Kafka on one machine, without Docker
    bench/     benchmarks against a ceiling measured in the same run (figures, no printing)
    cli/       the `wh` command, thin over the above: parses arguments, calls the package, prints

Drivers: the file driver (pipeline/run.py: wh import, generate, demo) and the Kafka
consumer (ingest/consumer.py: wh ingest) both run pipeline/step.py's BatchStep.
"""

from __future__ import annotations

__version__ = "0.1.0"
