-- Materialized analytics, refreshed per UTC day by `wh refresh` (re-running a day replaces it):
-- the day is built in the *_stage table, then swapped in with REPLACE PARTITION (atomic).

CREATE TABLE IF NOT EXISTS wh.bars_1m
(
    bar_start    DateTime64(9, 'UTC'),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    open         Float64,
    high         Float64,
    low          Float64,
    close        Float64,
    volume       Float64,
    vwap         Float64,
    trades       UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(bar_start)
ORDER BY (asset_class, symbol, bar_start);

CREATE TABLE IF NOT EXISTS wh.bars_1m_stage AS wh.bars_1m;

-- rank 1 = highest NAV at the end of `day` (00:00 UTC the next day); ties by trader.
CREATE TABLE IF NOT EXISTS wh.leaderboard_daily
(
    day              Date,
    rank             UInt64,
    trader           String,
    nav              Float64,
    cash             Float64,
    positions_value  Float64,
    pnl              Float64,
    total_return     Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(day)
ORDER BY (day, rank);

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily_stage AS wh.leaderboard_daily;
