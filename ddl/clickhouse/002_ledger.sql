-- The trading ledger: traders (accounts), orders, fills and portfolio snapshots.
-- Written by the simulator (one run replaces a trader's rows); read by the portfolio
-- queries (equity curve, P&L, drawdown, allocation, leaderboard). ClickHouse dialect.
-- side: 'buy' | 'sell'. Cash amounts are in the account currency (VCR by default).

CREATE TABLE IF NOT EXISTS wh.traders
(
    trader        String,
    strategy      LowCardinality(String),
    params        String,
    initial_cash  Float64,
    currency      LowCardinality(String),
    created_at    DateTime64(9, 'UTC')
)
ENGINE = MergeTree
ORDER BY trader;

-- One row per order, in its latest state. status: new | partially_filled | filled |
-- cancelled | rejected; reason says why for rejected/cancelled (EXCHANGE_CLOSED, …).
CREATE TABLE IF NOT EXISTS wh.orders
(
    order_id       String,
    trader         String,
    created_at     DateTime64(9, 'UTC'),
    updated_at     DateTime64(9, 'UTC'),
    symbol         LowCardinality(String),
    asset_class    LowCardinality(String),
    side           LowCardinality(String),
    order_type     LowCardinality(String),
    time_in_force  LowCardinality(String),
    post_only      Bool,
    qty            Float64,
    limit_price    Nullable(Float64),
    filled_qty     Float64,
    avg_price      Nullable(Float64),
    status         LowCardinality(String),
    reason         Nullable(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (trader, created_at, order_id);

-- fee: commission paid (cash). slippage: execution cost against the mid at fill time,
-- |price − mid| · qty in cash (what the fill cost beyond trading at the mid).
CREATE TABLE IF NOT EXISTS wh.fills
(
    fill_id      String,
    order_id     String,
    trader       String,
    timestamp    DateTime64(9, 'UTC'),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    side         LowCardinality(String),
    qty          Float64,
    price        Float64,
    fee          Float64,
    slippage     Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (trader, timestamp, fill_id);

-- What the simulator saw at a point in time (its own marks); the queries recompute NAV
-- from fills and the warehouse's quotes instead, so both can be compared.
CREATE TABLE IF NOT EXISTS wh.portfolio_snapshots
(
    trader           String,
    timestamp        DateTime64(9, 'UTC'),
    cash             Float64,
    positions_value  Float64,
    gross_exposure   Float64,
    nav              Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (trader, timestamp);
