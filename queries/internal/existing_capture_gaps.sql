-- name: existing_capture_gaps
-- description: capture outages already stored for these instruments (idempotent writes)
-- param symbols: Array(String)
SELECT worker, exchange, symbol, kind, from_ts
FROM wh.capture_gaps
WHERE has({symbols:Array(String)}, symbol)
