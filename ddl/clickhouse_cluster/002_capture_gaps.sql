-- The capture worker's outages (ddl/clickhouse/008_capture_gaps.sql) on a cluster: one
-- instrument's rows on one shard, like its ticks.
CREATE TABLE IF NOT EXISTS wh.capture_gaps_local {on_cluster}
(
    detected_at  DateTime64(9, 'UTC'),
    worker       String,
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    kind         LowCardinality(String),
    from_ts      DateTime64(9, 'UTC'),
    to_ts        DateTime64(9, 'UTC'),
    seconds      Float64,
    dials        Int64,
    reason       String
)
ENGINE = {merge_tree}
ORDER BY (exchange, symbol, kind, from_ts)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.capture_gaps {on_cluster} AS wh.capture_gaps_local
ENGINE = Distributed({cluster}, wh, capture_gaps_local, cityHash64(exchange, symbol));
