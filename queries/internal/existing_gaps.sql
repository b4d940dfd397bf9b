-- name: existing_gaps
-- description: gap events already stored for some symbols (idempotent writes)
-- param kind: String
-- param symbols: Array(String)
SELECT kind, exchange, symbol, from_seq
FROM wh.gaps
WHERE kind = {kind:String} AND has({symbols:Array(String)}, symbol)
