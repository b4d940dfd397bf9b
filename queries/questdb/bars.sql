-- name: bars
-- description: OHLCV bars of one symbol's trades with VWAP and trade count (QuestDB's SAMPLE BY); newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 86400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- QuestDB's version of queries/bars.sql, same parameters and columns. SAMPLE BY … ALIGN TO
-- CALENDAR buckets from midnight UTC, which is the epoch alignment of bars.sql for every
-- interval that divides a day (hence interval ≤ 86400 here). open/close are first()/last() in
-- event-time order; trades at the same nanosecond keep QuestDB's storage order (bars.sql breaks
-- that tie by receipt time, seq, trade_id). The interval is bound as a whole number of seconds
-- (`60s`): SAMPLE BY takes no expression.
SELECT bar_start, symbol, open, high, low, close, volume, vwap, trades
FROM
(
    SELECT bar_start, symbol, open, high, low, close, volume, vwap, trades
    FROM
    (
        SELECT
            timestamp AS bar_start,
            symbol,
            first(price) AS open,
            max(price) AS high,
            min(price) AS low,
            last(price) AS close,
            sum(size) AS volume,
            sum(price * size) / sum(size) AS vwap,
            count() AS trades
        FROM wh_trades
        WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
          AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
        SAMPLE BY {interval:UInt32}s ALIGN TO CALENDAR
    )
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
