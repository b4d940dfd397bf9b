-- The stored rolling z-score (issue 15): one row per quote of wh.market_ticks, its bid's
-- z-score over the default window (the 60 quotes of its instrument up to and including it)
-- as queries/zscore.sql computes it. Written by the sinks in the transaction of the quotes
-- (warehouse/sinks/zscores.py); a quote stored late, before others of its instrument, rewrites
-- the rows of the ≤ 59 quotes after it in the same transaction. The quote's identity columns
-- (exchange … ask_size) are the window order and join it to wh.market_ticks.
-- z_score is NULL exactly where the window is flat (rolling_std = 0).
CREATE TABLE IF NOT EXISTS wh.quote_zscores
(
    exchange      VARCHAR NOT NULL,
    symbol        VARCHAR NOT NULL,
    timestamp     TIMESTAMP_NS NOT NULL,
    received_at   TIMESTAMP_NS NOT NULL,
    seq           BIGINT,
    bid           DOUBLE NOT NULL,
    ask           DOUBLE NOT NULL,
    bid_size      DOUBLE,
    ask_size      DOUBLE,
    window_rows   INTEGER NOT NULL,
    rolling_mean  DOUBLE NOT NULL,
    rolling_std   DOUBLE NOT NULL,
    z_score       DOUBLE,
    version       UBIGINT NOT NULL  -- write time, ns (ClickHouse keeps the newest version)
);

-- the quotes already stored (a warehouse that predates the table): queries/zscore.sql's own
-- two-pass over each window, in the engine; only into an empty table (this statement is atomic
-- but the migration's record is written after it: a rerun must not add the rows twice)
INSERT INTO wh.quote_zscores
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size, n, anchor + dev,
       CASE WHEN lo = hi THEN 0.0 ELSE sqrt(list_sum(list_transform(prices, lambda p: (p - anchor - dev) * (p - anchor - dev))) / n) END,
       CASE WHEN lo = hi THEN NULL
            ELSE (bid - anchor - dev) / sqrt(list_sum(list_transform(prices, lambda p: (p - anchor - dev) * (p - anchor - dev))) / n) END,
       0
FROM
(
    SELECT *, list_sum(list_transform(prices, lambda p: p - anchor)) / n AS dev, list_min(prices) AS lo,
           list_max(prices) AS hi
    FROM
    (
        SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size,
               list(bid) OVER w AS prices, count(*) OVER w AS n, (list(bid) OVER w)[1] AS anchor
        FROM wh.market_ticks
        WINDOW w AS (PARTITION BY exchange, symbol
                     ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
                     ROWS BETWEEN 59 PRECEDING AND CURRENT ROW)
    )
)
WHERE NOT EXISTS (SELECT 1 FROM wh.quote_zscores);
