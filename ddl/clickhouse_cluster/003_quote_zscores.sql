-- The stored rolling z-score (ddl/clickhouse/009_quote_zscores.sql) on a cluster: one
-- instrument's rows on one shard, like its quotes (each shard replaces versions by itself).
CREATE TABLE IF NOT EXISTS wh.quote_zscores_local {on_cluster}
(
    exchange      LowCardinality(String),
    symbol        LowCardinality(String),
    timestamp     DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at   DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    seq           Nullable(Int64),
    bid           Float64,
    ask           Float64,
    bid_size      Nullable(Float64),
    ask_size      Nullable(Float64),
    window_rows   UInt32,
    rolling_mean  Float64,
    rolling_std   Float64,
    z_score       Nullable(Float64),
    version       UInt64
)
ENGINE = {replacing_merge_tree}
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size)
SETTINGS allow_nullable_key = 1;

CREATE TABLE IF NOT EXISTS wh.quote_zscores {on_cluster} AS wh.quote_zscores_local
ENGINE = Distributed({cluster}, wh, quote_zscores_local, cityHash64(exchange, symbol));
