-- name: existing_trades
-- description: dedup keys already stored for some symbols in a time range (idempotent writes)
-- param symbols: Array(String)
-- param lo: DateTime64(6, 'UTC')
-- param hi: DateTime64(6, 'UTC')
SELECT exchange, symbol, timestamp, trade_id
FROM wh.trades
WHERE has({symbols:Array(String)}, symbol)
  AND timestamp BETWEEN {lo:DateTime64(6, 'UTC')} AND {hi:DateTime64(6, 'UTC')}
