"""Benchmarks: throughput of wh's paths beside a ceiling measured in the same run.

Each module runs one benchmark and returns a result object (figures, no printing);
`wh bench …` (warehouse/cli/bench.py) prints them. BENCHMARKS.md has the figures.

    imports    Parquet → decode → sanitize → DuckDB vs DuckDB's own read_parquet
    zscore     the all-symbol z-score per engine; latency of one symbol's newest 100
    ingest     JSON ticks through Kafka into each engine vs consume-only; ClickHouse insert vs file()
    analytics  rows/s of the named queries per engine beside polars in memory
    replay     ticks/s out of the warehouse into strategies vs an unordered scan; RSS
"""
