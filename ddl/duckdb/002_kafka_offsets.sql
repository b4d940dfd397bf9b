-- Kafka offsets consumed into this DuckDB file, written in the same transaction as the
-- rows they produced: after a crash the consumer resumes from here (exactly-once).
CREATE TABLE IF NOT EXISTS wh.kafka_offsets
(
    group_id     VARCHAR NOT NULL,
    topic        VARCHAR NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
