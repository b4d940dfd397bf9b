-- name: symbols
-- description: Symbols with quotes, with their asset class, exchange, quote count and time range
-- param limit: UInt64 = 1000
SELECT
    symbol,
    any(asset_class) AS asset_class,
    any(exchange) AS exchange,
    count() AS quotes,
    min(timestamp) AS first_ts,
    max(timestamp) AS last_ts
FROM wh.market_ticks
GROUP BY symbol
ORDER BY symbol
LIMIT {limit:UInt64}
