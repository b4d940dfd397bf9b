-- Quotes, trades, rejects and sequence-gap events. ClickHouse dialect, applied by `wh migrate`.
-- Times: DateTime64(9, 'UTC') = int64 ns in Arrow. Sort keys serve "one symbol, a time range".
-- non_replicated_deduplication_window lets a retried insert with the same
-- insert_deduplication_token be dropped (used by the Kafka consumer).

CREATE TABLE IF NOT EXISTS wh.market_ticks
(
    timestamp    DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at  DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    bid          Float64,
    ask          Float64,
    bid_size     Float64,
    ask_size     Float64,
    seq          Nullable(Int64)
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (asset_class, symbol, timestamp)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.trades
(
    timestamp    DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at  DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    trade_id     String,
    side         LowCardinality(String),
    price        Float64,
    size         Float64,
    seq          Nullable(Int64)
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (asset_class, symbol, timestamp)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.rejects
(
    rejected_at    DateTime64(9, 'UTC'),
    source         String,
    source_offset  Int64,
    kind           LowCardinality(String),
    rule           LowCardinality(String),
    reason         String,
    exchange       Nullable(String),
    symbol         Nullable(String),
    timestamp      Nullable(DateTime64(9, 'UTC')),
    raw            String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (source, source_offset, rule)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.gaps
(
    detected_at  DateTime64(9, 'UTC'),
    source       String,
    kind         LowCardinality(String),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    from_seq     Int64,
    to_seq       Int64,
    missing      Int64,
    timestamp    DateTime64(9, 'UTC')
)
ENGINE = MergeTree
ORDER BY (exchange, symbol, kind, from_seq)
SETTINGS non_replicated_deduplication_window = 1000;
