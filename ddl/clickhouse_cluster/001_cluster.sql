-- The warehouse on a ClickHouse cluster (`wh migrate --cluster NAME`, or WH_CLICKHOUSE_CLUSTER):
-- every table of ddl/clickhouse as it stands after its last migration, in two parts —
--   wh.<table>_local   the shard's rows: {merge_tree}
--   wh.<table>         Distributed over the _local tables, sharded by a deterministic key
-- wh reads and writes wh.<table> as on one server. Writes are synchronous
-- (distributed_foreground_insert = 1: the insert returns once every shard holds its block,
-- so offsets are committed after the data is on the shards) and a retried batch splits into the
-- same blocks (the keys hash columns, never rand()), so each shard drops it again by its
-- insert_deduplication_token. Placeholders wh fills in:
--   {on_cluster}  "ON CLUSTER <name>" (a Keeper-backed cluster: one statement for all nodes),
--                 or empty (WH_CLICKHOUSE_NODES: wh applies the file to each node itself)
--   {merge_tree}  ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
--                 with Keeper, plain MergeTree node by node (shards without replicas);
--                 {aggregating_merge_tree} likewise
--   {cluster}     the cluster's name in the servers' <remote_servers>
-- ddl/clickhouse and this file must describe the same columns (tests/integration/test_clickhouse_cluster.py).

CREATE DATABASE IF NOT EXISTS wh {on_cluster};

CREATE TABLE IF NOT EXISTS wh.market_ticks_local {on_cluster}
(
    timestamp    DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at  DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    bid          Float64,
    ask          Float64,
    bid_size     Nullable(Float64),
    ask_size     Nullable(Float64),
    seq          Nullable(Int64)
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (asset_class, symbol, timestamp)
SETTINGS non_replicated_deduplication_window = 1000;

-- one instrument's ticks on one shard: its window analytics read one shard's rows
CREATE TABLE IF NOT EXISTS wh.market_ticks {on_cluster} AS wh.market_ticks_local
ENGINE = Distributed({cluster}, wh, market_ticks_local, cityHash64(exchange, symbol));

CREATE TABLE IF NOT EXISTS wh.trades_local {on_cluster}
(
    timestamp    DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at  DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    asset_class  LowCardinality(String),
    trade_id     String,
    side         LowCardinality(String),
    price        Float64,
    size         Float64,
    seq          Nullable(Int64)
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (asset_class, symbol, timestamp)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.trades {on_cluster} AS wh.trades_local
ENGINE = Distributed({cluster}, wh, trades_local, cityHash64(exchange, symbol));

CREATE TABLE IF NOT EXISTS wh.rejects_local {on_cluster}
(
    rejected_at    DateTime64(9, 'UTC'),
    source         String,
    source_offset  Int64,
    kind           LowCardinality(String),
    rule           LowCardinality(String),
    reason         String,
    exchange       Nullable(String),
    symbol         Nullable(String),
    timestamp      Nullable(DateTime64(9, 'UTC')),
    raw            String
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (source, source_offset, rule)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.rejects {on_cluster} AS wh.rejects_local
ENGINE = Distributed({cluster}, wh, rejects_local, cityHash64(source, source_offset));

CREATE TABLE IF NOT EXISTS wh.gaps_local {on_cluster}
(
    detected_at  DateTime64(9, 'UTC'),
    source       String,
    kind         LowCardinality(String),
    exchange     LowCardinality(String),
    symbol       LowCardinality(String),
    from_seq     Int64,
    to_seq       Int64,
    missing      Int64,
    timestamp    DateTime64(9, 'UTC')
)
ENGINE = {merge_tree}
ORDER BY (exchange, symbol, kind, from_seq)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.gaps {on_cluster} AS wh.gaps_local
ENGINE = Distributed({cluster}, wh, gaps_local, cityHash64(exchange, symbol));

CREATE TABLE IF NOT EXISTS wh.stream_losses_local {on_cluster}
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
ENGINE = {merge_tree}
ORDER BY (group_id, topic, partition, from_offset)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.stream_losses {on_cluster} AS wh.stream_losses_local
ENGINE = Distributed({cluster}, wh, stream_losses_local, cityHash64(group_id, topic, partition));

-- The ledger: one trader's rows on one shard (a run replaces them: DELETE on the _local tables)
CREATE TABLE IF NOT EXISTS wh.traders_local {on_cluster}
(
    trader        String,
    strategy      LowCardinality(String),
    params        String,
    initial_cash  Float64,
    currency      LowCardinality(String),
    created_at    DateTime64(9, 'UTC')
)
ENGINE = {merge_tree}
ORDER BY trader;

CREATE TABLE IF NOT EXISTS wh.traders {on_cluster} AS wh.traders_local
ENGINE = Distributed({cluster}, wh, traders_local, cityHash64(trader));

CREATE TABLE IF NOT EXISTS wh.orders_local {on_cluster}
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
    reason         Nullable(String),
    exchange       LowCardinality(String) DEFAULT ''
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMM(created_at)
ORDER BY (trader, created_at, order_id);

CREATE TABLE IF NOT EXISTS wh.orders {on_cluster} AS wh.orders_local
ENGINE = Distributed({cluster}, wh, orders_local, cityHash64(trader));

CREATE TABLE IF NOT EXISTS wh.fills_local {on_cluster}
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
    slippage     Float64,
    exchange     LowCardinality(String) DEFAULT ''
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (trader, timestamp, fill_id);

CREATE TABLE IF NOT EXISTS wh.fills {on_cluster} AS wh.fills_local
ENGINE = Distributed({cluster}, wh, fills_local, cityHash64(trader));

CREATE TABLE IF NOT EXISTS wh.portfolio_snapshots_local {on_cluster}
(
    trader           String,
    timestamp        DateTime64(9, 'UTC'),
    cash             Float64,
    positions_value  Float64,
    gross_exposure   Float64,
    nav              Float64
)
ENGINE = {merge_tree}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (trader, timestamp);

CREATE TABLE IF NOT EXISTS wh.portfolio_snapshots {on_cluster} AS wh.portfolio_snapshots_local
ENGINE = Distributed({cluster}, wh, portfolio_snapshots_local, cityHash64(trader));

-- Materialized analytics: a day is built in the _stage tables (same shards as the table it
-- replaces, hence the same key), then each node swaps its part in (REPLACE PARTITION on _local)
CREATE TABLE IF NOT EXISTS wh.bars_1m_local {on_cluster}
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
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(bar_start)
ORDER BY (asset_class, symbol, bar_start);

CREATE TABLE IF NOT EXISTS wh.bars_1m {on_cluster} AS wh.bars_1m_local
ENGINE = Distributed({cluster}, wh, bars_1m_local, cityHash64(exchange, symbol));

-- its own engine clause, not `AS wh.bars_1m_local`: a replicated copy would take that table's
-- Keeper path and replica name
CREATE TABLE IF NOT EXISTS wh.bars_1m_stage_local {on_cluster} AS wh.bars_1m_local
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(bar_start)
ORDER BY (asset_class, symbol, bar_start);

CREATE TABLE IF NOT EXISTS wh.bars_1m_stage {on_cluster} AS wh.bars_1m_local
ENGINE = Distributed({cluster}, wh, bars_1m_stage_local, cityHash64(exchange, symbol));

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily_local {on_cluster}
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
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(day)
ORDER BY (day, rank);

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily {on_cluster} AS wh.leaderboard_daily_local
ENGINE = Distributed({cluster}, wh, leaderboard_daily_local, cityHash64(trader));

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily_stage_local {on_cluster} AS wh.leaderboard_daily_local
ENGINE = {merge_tree}
PARTITION BY toYYYYMMDD(day)
ORDER BY (day, rank);

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily_stage {on_cluster} AS wh.leaderboard_daily_local
ENGINE = Distributed({cluster}, wh, leaderboard_daily_stage_local, cityHash64(trader));

-- The instrument catalog (see ddl/clickhouse/007_instruments.sql): each node's materialized views
-- summarise the blocks its _local tick tables receive into instruments_local (an instrument
-- lives on one shard, so its row is on one node); wh.instruments is Distributed.
CREATE TABLE IF NOT EXISTS wh.instruments_local {on_cluster}
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
ENGINE = {aggregating_merge_tree}
ORDER BY (exchange, symbol)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS wh.instruments {on_cluster} AS wh.instruments_local
ENGINE = Distributed({cluster}, wh, instruments_local, cityHash64(exchange, symbol));

CREATE MATERIALIZED VIEW IF NOT EXISTS wh.instruments_from_quotes_local {on_cluster} TO wh.instruments_local AS
SELECT exchange, symbol, min(asset_class) AS asset_class, min(timestamp) AS first_ts,
       max(timestamp) AS last_ts, min(timestamp) AS first_quote_ts, max(timestamp) AS last_quote_ts,
       toUInt64(count()) AS quotes, toUInt64(0) AS trades
FROM wh.market_ticks_local GROUP BY exchange, symbol;

CREATE MATERIALIZED VIEW IF NOT EXISTS wh.instruments_from_trades_local {on_cluster} TO wh.instruments_local AS
SELECT exchange, symbol, min(asset_class) AS asset_class, min(timestamp) AS first_ts,
       max(timestamp) AS last_ts, toDateTime64('2262-01-01 00:00:00', 9, 'UTC') AS first_quote_ts,
       toDateTime64(0, 9, 'UTC') AS last_quote_ts, toUInt64(0) AS quotes, toUInt64(count()) AS trades
FROM wh.trades_local GROUP BY exchange, symbol;
