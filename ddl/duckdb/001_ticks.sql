-- Quotes, trades, rejects and sequence-gap events. DuckDB dialect, applied by `wh migrate`.
-- TIMESTAMP_NS holds UTC nanoseconds (DuckDB's TIMESTAMPTZ is microseconds only).
-- No primary keys: idempotency is an anti-join on the dedup key before insert
-- (warehouse/sinks), the same rule on every engine; rows are inserted sorted by
-- (asset_class, symbol, timestamp) per batch, like ClickHouse's ORDER BY.

CREATE TABLE IF NOT EXISTS wh.market_ticks
(
    timestamp    TIMESTAMP_NS NOT NULL,
    received_at  TIMESTAMP_NS NOT NULL,
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    asset_class  VARCHAR NOT NULL,
    bid          DOUBLE NOT NULL,
    ask          DOUBLE NOT NULL,
    bid_size     DOUBLE NOT NULL,
    ask_size     DOUBLE NOT NULL,
    seq          BIGINT
);

CREATE TABLE IF NOT EXISTS wh.trades
(
    timestamp    TIMESTAMP_NS NOT NULL,
    received_at  TIMESTAMP_NS NOT NULL,
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    asset_class  VARCHAR NOT NULL,
    trade_id     VARCHAR NOT NULL,
    side         VARCHAR NOT NULL,
    price        DOUBLE NOT NULL,
    size         DOUBLE NOT NULL,
    seq          BIGINT
);

CREATE TABLE IF NOT EXISTS wh.rejects
(
    rejected_at    TIMESTAMP_NS NOT NULL,
    source         VARCHAR NOT NULL,
    source_offset  BIGINT NOT NULL,
    kind           VARCHAR NOT NULL,
    rule           VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    exchange       VARCHAR,
    symbol         VARCHAR,
    timestamp      TIMESTAMP_NS,
    raw            VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS wh.gaps
(
    detected_at  TIMESTAMP_NS NOT NULL,
    source       VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    from_seq     BIGINT NOT NULL,
    to_seq       BIGINT NOT NULL,
    missing      BIGINT NOT NULL,
    timestamp    TIMESTAMP_NS NOT NULL
);
