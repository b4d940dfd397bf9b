-- name: replay_quotes
-- description: building block of the replay: the quotes of some symbols in one time slice, as int64 ns
-- param symbols: Array(String)
-- param exchange: String = ''
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
--
-- The slice is on event time (`timestamp`); the replay sorts what it reads by its full key.
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
WHERE has({symbols:Array(String)}, symbol) AND ({exchange:String} = '' OR exchange = {exchange:String})
  AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
