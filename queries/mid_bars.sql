-- name: mid_bars
-- description: OHLC bars of one symbol's quote mid ((bid + ask) / 2) at any interval (seconds) with quote count; newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- Same alignment as `bars`. open/close are the first/last quote in event order
-- (timestamp, receipt time, seq; then bid, ask so that ties resolve the same on every engine).
SELECT bar_start, symbol, open, high, low, close, quotes
FROM
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                * toInt64({interval:UInt32}) * 1000000000) AS bar_start,
        symbol,
        argMin((bid + ask) / 2, (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS open,
        max((bid + ask) / 2) AS high,
        min((bid + ask) / 2) AS low,
        argMax((bid + ask) / 2, (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS close,
        count() AS quotes
    FROM wh.market_ticks
    WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY bar_start, symbol
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
