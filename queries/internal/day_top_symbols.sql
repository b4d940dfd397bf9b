-- name: day_top_symbols
-- description: one UTC day's most active instruments by quotes (Dagster's materialization metadata)
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
-- param limit: UInt64 = 10
SELECT exchange, symbol, count() AS quotes, min(bid) AS low_bid, max(ask) AS high_ask
FROM wh.market_ticks
WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
GROUP BY exchange, symbol
ORDER BY quotes DESC, exchange, symbol
LIMIT {limit:UInt64}
