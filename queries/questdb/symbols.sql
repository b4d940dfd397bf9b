-- name: symbols
-- description: Symbols with quotes per exchange, with their asset class, quote count and time range (QuestDB)
-- param limit: UInt64 = 1000
--
-- QuestDB's version of queries/symbols.sql: same columns and order.
SELECT symbol, exchange, asset_class, quotes, first_ts, last_ts
FROM
(
    SELECT symbol, exchange, first(asset_class) AS asset_class, count() AS quotes,
           min(timestamp) AS first_ts, max(timestamp) AS last_ts
    FROM wh_market_ticks
    GROUP BY symbol, exchange
)
ORDER BY symbol, exchange
LIMIT {limit:UInt64}
