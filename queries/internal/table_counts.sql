-- name: table_counts
-- description: rows per warehouse table (wh status)
SELECT
    (SELECT count() FROM wh.market_ticks) AS market_ticks,
    (SELECT count() FROM wh.trades) AS trades,
    (SELECT count() FROM wh.rejects) AS rejects,
    (SELECT count() FROM wh.gaps) AS gaps
