-- name: bars
-- description: OHLCV bars of one symbol's trades at any interval (seconds, 1 … 604800) with VWAP and trade count; newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- Bars are aligned to the Unix epoch (a 1-day bar starts at 00:00 UTC), labelled by their
-- start, and absent when no trade happened. open/close are the first/last trade in event
-- order (timestamp, receipt time, seq, trade_id); volume = Σ size; vwap = Σ price·size / Σ size.
SELECT bar_start, symbol, open, high, low, close, volume, vwap, trades
FROM
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                * toInt64({interval:UInt32}) * 1000000000) AS bar_start,
        symbol,
        argMin(price, (timestamp, received_at, ifNull(seq, -1), trade_id)) AS open,
        max(price) AS high,
        min(price) AS low,
        argMax(price, (timestamp, received_at, ifNull(seq, -1), trade_id)) AS close,
        sum(size) AS volume,
        sum(price * size) / sum(size) AS vwap,
        count() AS trades
    FROM wh.trades
    WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY bar_start, symbol
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
