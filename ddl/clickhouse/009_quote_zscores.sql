-- The stored rolling z-score (issue 15): one row per quote of wh.market_ticks, its bid's
-- z-score over the default window (the 60 quotes of its instrument up to and including it)
-- as queries/zscore.sql computes it. Written by the sink after the quotes
-- (warehouse/sinks/zscores.py); a quote stored late rewrites the rows of the ≤ 59 quotes
-- after it as new versions. ReplacingMergeTree keeps the newest version of each quote when
-- parts merge: read with FINAL. The sorting key is the quote's identity in the window order.
-- z_score is NULL exactly where the window is flat (rolling_std = 0).
CREATE TABLE IF NOT EXISTS wh.quote_zscores
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size)
SETTINGS allow_nullable_key = 1;

-- the quotes already stored (a warehouse that predates the table): queries/zscore.sql's own
-- two-pass over each window, in the engine (a rerun adds identical versions: FINAL and merges
-- keep one)
INSERT INTO wh.quote_zscores
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
        FROM wh.market_ticks
        WINDOW w AS (PARTITION BY exchange, symbol
                     ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
                     ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
    )
);
