-- name: bars_1m_day
-- description: 1-minute OHLCV bars of every symbol's trades in [since, until) — what `wh refresh bars_1m` stores per day
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
--
-- Same definitions as queries/bars.sql (open/close in event order; vwap = Σ price·size / Σ size),
-- per (exchange, symbol).
SELECT
    fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), 60000000000) * 60000000000) AS bar_start,
    exchange,
    symbol,
    min(asset_class) AS asset_class,
    argMin(price, (timestamp, received_at, ifNull(seq, -1), trade_id)) AS open,
    max(price) AS high,
    min(price) AS low,
    argMax(price, (timestamp, received_at, ifNull(seq, -1), trade_id)) AS close,
    sum(size) AS volume,
    sum(price * size) / sum(size) AS vwap,
    count() AS trades
FROM wh.trades
WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
GROUP BY bar_start, exchange, symbol
ORDER BY asset_class, symbol, bar_start, exchange
