-- Hot tier: quotes, trades and rejects. QuestDB dialect, applied by `wh migrate --engine questdb`
-- over HTTP /exec. QuestDB has no schemas: wh.<table> is the table wh_<table> (mapped in one
-- place, warehouse/sql/engines/questdb.py). Tables are created here, never by ILP (the sink
-- refuses a missing table; `wh servers` starts QuestDB with line.auto.create.new.tables=false).
--
-- The designated timestamp is the event time (`timestamp`, TIMESTAMP_NS), never server time.
-- WAL tables partitioned by day, DEDUP UPSERT KEYS = the dedup key of records.py, designated
-- timestamp included: a batch sent again after a crash replaces its own rows instead of
-- adding them (exactly once with the Kafka consumer). Key columns may be NULL: QuestDB compares
-- NULL keys as equal (a NULL DOUBLE is NaN, a NULL LONG its sentinel), which is polars'
-- `nulls_equal=True` in the anti-join of the other engines.
--
-- Quotes: records.py's key is (exchange, symbol, timestamp, seq) when seq is set, else
-- (exchange, symbol, timestamp, received_at, bid, ask, bid_size, ask_size). QuestDB keys are
-- a fixed column list, so the key here is the union of both: every column of either variant.
-- An identical re-send always collapses; two rows that records.py would call duplicates while
-- differing elsewhere (same seq, other prices) stay two rows here instead of one being
-- overwritten — UPSERT never replaces different content. The sanitizer's `duplicate` rule
-- (stateful across restarts) rejects such rows before any sink sees them.
--
-- SYMBOL for repeated strings (exchange, symbol, asset_class, side, rule, kind, source),
-- VARCHAR for ids and free text (trade_id, reason, raw).

CREATE TABLE IF NOT EXISTS wh_market_ticks
(
    timestamp    TIMESTAMP_NS,
    received_at  TIMESTAMP_NS,
    exchange     SYMBOL,
    symbol       SYMBOL,
    asset_class  SYMBOL,
    bid          DOUBLE,
    ask          DOUBLE,
    bid_size     DOUBLE,
    ask_size     DOUBLE,
    seq          LONG
)
TIMESTAMP(timestamp) PARTITION BY DAY WAL
DEDUP UPSERT KEYS(timestamp, exchange, symbol, seq, received_at, bid, ask, bid_size, ask_size);

CREATE TABLE IF NOT EXISTS wh_trades
(
    timestamp    TIMESTAMP_NS,
    received_at  TIMESTAMP_NS,
    exchange     SYMBOL,
    symbol       SYMBOL,
    asset_class  SYMBOL,
    trade_id     VARCHAR,
    side         SYMBOL,
    price        DOUBLE,
    size         DOUBLE,
    seq          LONG
)
TIMESTAMP(timestamp) PARTITION BY DAY WAL
DEDUP UPSERT KEYS(timestamp, exchange, symbol, trade_id);

-- A reject's event time is the rejected tick's, when it has one; an unreadable message has
-- none and is filed at the epoch (1970-01-01T00:00:00Z): the designated timestamp cannot be
-- NULL, and rejected_at (wall clock at sanitizing) differs on a replay, so it cannot key a
-- retry. Key: (timestamp, source, source_offset, rule), records.py's key plus the timestamp.
CREATE TABLE IF NOT EXISTS wh_rejects
(
    timestamp      TIMESTAMP_NS,
    rejected_at    TIMESTAMP_NS,
    source         SYMBOL,
    source_offset  LONG,
    kind           SYMBOL,
    rule           SYMBOL,
    reason         VARCHAR,
    exchange       SYMBOL,
    symbol         SYMBOL,
    raw            VARCHAR
)
TIMESTAMP(timestamp) PARTITION BY DAY WAL
DEDUP UPSERT KEYS(timestamp, source, source_offset, rule);
