-- name: existing_market_ticks
-- description: dedup keys already stored for some symbols in a time range (idempotent writes)
-- param symbols: Array(String)
-- param lo: DateTime64(6, 'UTC')
-- param hi: DateTime64(6, 'UTC')
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size
FROM wh.market_ticks
WHERE has({symbols:Array(String)}, symbol)
  AND timestamp BETWEEN {lo:DateTime64(6, 'UTC')} AND {hi:DateTime64(6, 'UTC')}
