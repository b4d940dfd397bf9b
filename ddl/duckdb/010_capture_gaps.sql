-- The capture worker's outages (`wh capture`): a stream's connection failed or stalled, from
-- the receipt time of the last frame before to the first frame after, or its queue was full
-- (frames dropped). One row per instrument of the stream; they travel through Kafka with the
-- ticks (type "gap", key = symbol) and are stored idempotently (key: worker, exchange,
-- symbol, kind, from_ts).
CREATE TABLE IF NOT EXISTS wh.capture_gaps
(
    detected_at  TIMESTAMP_NS NOT NULL,
    worker       VARCHAR NOT NULL,
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    from_ts      TIMESTAMP_NS NOT NULL,
    to_ts        TIMESTAMP_NS NOT NULL,
    seconds      DOUBLE NOT NULL,
    dials        BIGINT NOT NULL,
    reason       VARCHAR NOT NULL
);
