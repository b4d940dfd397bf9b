-- name: zscore_context
-- description: building block: the stored quotes a batch's stored z-scores depend on (warehouse/sinks/zscores.py) — of one instrument, the window - 1 quotes before `lo`, every quote from `lo` to `hi`, the window - 1 quotes after `hi`
-- param exchange: String
-- param symbol: String
-- param lo: DateTime64(9, 'UTC')
-- param hi: DateTime64(9, 'UTC')
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param window: UInt32 = 60 in [2, 1000000]
--
-- part 0: before, 1: within [lo, hi], 2: after. `since` bounds the scan back from `lo` (the caller
-- reads again without it when fewer than window - 1 quotes come back and older ones may exist).
-- The order is the window order of queries/zscore.sql; the descending one puts NULLs first so it is
-- its exact reverse.
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size, CAST(0 AS UInt8) AS part
FROM
(
    SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size
    FROM wh.market_ticks
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND timestamp < {lo:DateTime64(9, 'UTC')} AND timestamp >= {since:DateTime64(9, 'UTC')}
    ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
             bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST
    LIMIT {window:UInt32} - 1
)
UNION ALL
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size, CAST(1 AS UInt8) AS part
FROM wh.market_ticks
WHERE exchange = {exchange:String} AND symbol = {symbol:String}
  AND timestamp >= {lo:DateTime64(9, 'UTC')} AND timestamp <= {hi:DateTime64(9, 'UTC')}
UNION ALL
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size, CAST(2 AS UInt8) AS part
FROM
(
    SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size
    FROM wh.market_ticks
    WHERE exchange = {exchange:String} AND symbol = {symbol:String} AND timestamp > {hi:DateTime64(9, 'UTC')}
    ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
    LIMIT {window:UInt32} - 1
)
