-- The instrument catalog: per (exchange, symbol) its asset class, first and last event time and
-- row counts, kept by ClickHouse itself — a materialized view per tick table adds each inserted
-- block's summary. A block the insert_deduplication_token drops still reaches the views (measured
-- on 26.9); its summary carries a token derived from the block's, so this table's own
-- deduplication window drops it too (tested). Read it
-- aggregated (queries/internal/instruments.sql): parts merge in the background.
CREATE TABLE IF NOT EXISTS wh.instruments
(
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  SimpleAggregateFunction(min, LowCardinality(String)),
    first_ts     SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts      SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    -- the quotes' own span (the trades view writes 2262-01-01 / 1970-01-01: neutral for min / max)
    first_quote_ts SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_quote_ts  SimpleAggregateFunction(max, DateTime64(9, 'UTC')),
    quotes       SimpleAggregateFunction(sum, UInt64),
    trades       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (exchange, symbol)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS wh.instruments_from_quotes TO wh.instruments AS
SELECT exchange, symbol, min(asset_class) AS asset_class, min(timestamp) AS first_ts,
       max(timestamp) AS last_ts, min(timestamp) AS first_quote_ts, max(timestamp) AS last_quote_ts,
       toUInt64(count()) AS quotes, toUInt64(0) AS trades
FROM wh.market_ticks GROUP BY exchange, symbol;

CREATE MATERIALIZED VIEW IF NOT EXISTS wh.instruments_from_trades TO wh.instruments AS
SELECT exchange, symbol, min(asset_class) AS asset_class, min(timestamp) AS first_ts,
       max(timestamp) AS last_ts, toDateTime64('2262-01-01 00:00:00', 9, 'UTC') AS first_quote_ts,
       toDateTime64(0, 9, 'UTC') AS last_quote_ts, toUInt64(0) AS quotes, toUInt64(count()) AS trades
FROM wh.trades GROUP BY exchange, symbol;

-- what is already stored (apply while nothing writes: rows inserted between the views and
-- this statement would count twice)
INSERT INTO wh.instruments
SELECT exchange, symbol, min(asset_class), min(timestamp), max(timestamp), min(timestamp), max(timestamp),
       toUInt64(count()), toUInt64(0)
FROM wh.market_ticks GROUP BY exchange, symbol;

INSERT INTO wh.instruments
SELECT exchange, symbol, min(asset_class), min(timestamp), max(timestamp), toDateTime64('2262-01-01 00:00:00', 9, 'UTC'),
       toDateTime64(0, 9, 'UTC'), toUInt64(0), toUInt64(count())
FROM wh.trades GROUP BY exchange, symbol;
