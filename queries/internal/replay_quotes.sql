-- name: replay_quotes
-- description: building block of the replay: the quotes of some symbols in one time slice, as int64 ns
-- param symbols: Array(String)
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
-- param by_receipt: UInt8 = 0
--
-- The slice is on event time (`timestamp`); rows come sorted by the clock's time (the engine
-- sorts in parallel) and the replay merges the sources, breaking ties by its full key.
SELECT
    toUnixTimestamp64Nano(timestamp) AS ts_event,
    toUnixTimestamp64Nano(received_at) AS ts_recv,
    ifNull(seq, -1) AS seq,
    exchange,
    symbol,
    asset_class,
    bid,
    ask,
    bid_size,
    ask_size
FROM wh.market_ticks
WHERE has({symbols:Array(String)}, symbol)
  AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
ORDER BY if({by_receipt:UInt8} = 1, received_at, timestamp)
