-- The capture worker's outages (`wh capture`): a stream's connection failed or stalled, from
-- the receipt time of the last frame before to the first frame after, or its queue was full
-- (frames dropped). One row per instrument of the stream; they travel through Kafka with the
-- ticks (type "gap", key = symbol) and are stored idempotently (key: worker, exchange,
-- symbol, kind, from_ts).
CREATE TABLE IF NOT EXISTS wh.capture_gaps
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
ENGINE = MergeTree
ORDER BY (exchange, symbol, kind, from_ts)
SETTINGS non_replicated_deduplication_window = 1000;
