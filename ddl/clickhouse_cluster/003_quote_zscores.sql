-- The stored rolling z-score (ddl/clickhouse/009_quote_zscores.sql) on a cluster: one
-- instrument's rows on one shard, like its quotes (each shard replaces versions by itself).
CREATE TABLE IF NOT EXISTS wh.quote_zscores_local {on_cluster}
(
    exchange      LowCardinality(String),
    symbol        LowCardinality(String),
    timestamp     DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at   DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    seq           Nullable(Int64),
    bid           Float64,
    ask           Float64,
    bid_size      Nullable(Float64),
    ask_size      Nullable(Float64),
    window_rows   UInt32,
    rolling_mean  Float64,
    rolling_std   Float64,
    z_score       Nullable(Float64),
    version       UInt64
)
ENGINE = {replacing_merge_tree}
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size)
SETTINGS allow_nullable_key = 1;

CREATE TABLE IF NOT EXISTS wh.quote_zscores {on_cluster} AS wh.quote_zscores_local
ENGINE = Distributed({cluster}, wh, quote_zscores_local, cityHash64(exchange, symbol));

-- the quotes already stored, as ddl/clickhouse/009, shard by shard: each node computes the rows
-- of the quotes it holds (an instrument's quotes and z-scores share a shard: the same sharding
-- key). Applied node by node (WH_CLICKHOUSE_NODES) that covers every shard. With Keeper the
-- file is applied once, through one node: only that node's shard is filled here — the other
-- shards' older quotes need this statement run on one replica of each (README, "ClickHouse past
-- one machine").
INSERT INTO wh.quote_zscores_local
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size, n, anchor + dev,
       if(lo = hi, 0., sqrt(arraySum(arrayMap(p -> (p - anchor - dev) * (p - anchor - dev), prices)) / n)),
       if(lo = hi, NULL, (bid - anchor - dev) / sqrt(arraySum(arrayMap(p -> (p - anchor - dev) * (p - anchor - dev), prices)) / n)),
       0
FROM
(
    SELECT *, prices[1] AS anchor, arraySum(arrayMap(p -> p - anchor, prices)) / n AS dev,
           arrayMin(prices) AS lo, arrayMax(prices) AS hi
    FROM
    (
        SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size,
               groupArray(bid) OVER w AS prices, toUInt32(count() OVER w) AS n
        FROM wh.market_ticks_local
        WINDOW w AS (PARTITION BY exchange, symbol
                     ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
                     ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
    )
);
