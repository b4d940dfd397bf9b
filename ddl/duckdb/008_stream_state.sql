-- The sanitizer's state (per rule: newest event time, recent prices, last seq, recent dedup
-- keys, per instrument) as of the offsets in wh.kafka_offsets, written in the same
-- transaction: after a crash the consumer resumes with exactly the state it had at those
-- offsets, so a restart changes no rule's verdict. Arrow IPC per component.
CREATE TABLE IF NOT EXISTS wh.stream_state
(
    group_id     VARCHAR NOT NULL,
    topic        VARCHAR NOT NULL,
    component    VARCHAR NOT NULL,
    data         BLOB NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, topic, component)
);
