-- name: zscore_quotes
-- description: building block: one instrument's newest `rows` bids in the z-score window order (newest first), for the O(1) kernel at windows other than the stored one (warehouse/analytics)
-- param symbol: String
-- param exchange: String
-- param rows: UInt64
-- param since: DateTime64(9, 'UTC') = 1970-01-01
SELECT timestamp, symbol, bid
FROM wh.market_ticks
WHERE exchange = {exchange:String} AND symbol = {symbol:String} AND timestamp >= {since:DateTime64(9, 'UTC')}
ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
         bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST
LIMIT {rows:UInt64}
