-- name: symbols
-- description: Symbols with quotes per exchange, with their asset class, quote count and time range
-- param limit: UInt64 = 1000
SELECT
    symbol,
    exchange,
    min(asset_class) AS asset_class,
    count() AS quotes,
    min(timestamp) AS first_ts,
    max(timestamp) AS last_ts
FROM wh.market_ticks
GROUP BY symbol, exchange
ORDER BY symbol, exchange
LIMIT {limit:UInt64}
