-- Messages the broker expired before the consumer group read them (retention, or the
-- embedded broker's ~5 MB per partition): one row per lost offset range. Written with the
-- next batch, idempotently (key: group_id, topic, partition, from_offset).
CREATE TABLE IF NOT EXISTS wh.stream_losses
(
    detected_at  DateTime64(9, 'UTC'),
    group_id     String,
    topic        String,
    partition    Int32,
    from_offset  Int64,
    to_offset    Int64,
    missing      Int64,
    reason       String
)
ENGINE = MergeTree
ORDER BY (group_id, topic, partition, from_offset)
SETTINGS non_replicated_deduplication_window = 1000;
