-- name: zscore_all
-- description: the z-score computation of queries/zscore.sql over every symbol, folded to a checksum (benchmark)
-- param window: UInt32 = 60 in [1, 1000000]
SELECT count() AS rows, sum(z_score) AS z_sum, countIf(z_score IS NULL) AS z_nulls
FROM
(
    SELECT
        if(arrayMin(prices) = arrayMax(prices), NULL,
           (bid - anchor - deviation)
           / sqrt(arraySum(arrayMap(p -> (p - anchor - deviation) * (p - anchor - deviation), prices)) / n)) AS z_score
    FROM
    (
        SELECT
            bid,
            groupArray(bid) OVER w AS prices,
            count() OVER w AS n,
            prices[1] AS anchor,
            arraySum(arrayMap(p -> p - anchor, prices)) / n AS deviation  -- as queries/zscore.sql
        FROM wh.market_ticks
        WINDOW w AS (PARTITION BY exchange, symbol ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
                     ROWS BETWEEN {window:UInt32} - 1 PRECEDING AND CURRENT ROW)
    )
)
