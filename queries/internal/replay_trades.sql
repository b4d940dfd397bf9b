-- name: replay_trades
-- description: building block of the replay: the trades of some symbols in one time slice, as int64 ns
-- param symbols: Array(String)
-- param exchange: String = ''
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
SELECT
    toUnixTimestamp64Nano(timestamp) AS ts_event,
    toUnixTimestamp64Nano(received_at) AS ts_recv,
    ifNull(seq, -1) AS seq,
    exchange,
    symbol,
    asset_class,
    trade_id,
    side,
    price,
    size
FROM wh.trades
WHERE has({symbols:Array(String)}, symbol) AND ({exchange:String} = '' OR exchange = {exchange:String})
  AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
