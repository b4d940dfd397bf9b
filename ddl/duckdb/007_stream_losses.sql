-- Messages the broker expired before the consumer group read them (retention, or the
-- embedded broker's ~5 MB per partition): one row per lost offset range. Written with the
-- next batch, idempotently (key: group_id, topic, partition, from_offset).
CREATE TABLE IF NOT EXISTS wh.stream_losses
(
    detected_at  TIMESTAMP_NS NOT NULL,
    group_id     VARCHAR NOT NULL,
    topic        VARCHAR NOT NULL,
    partition    INTEGER NOT NULL,
    from_offset  BIGINT NOT NULL,
    to_offset    BIGINT NOT NULL,
    missing      BIGINT NOT NULL,
    reason       VARCHAR NOT NULL
);
