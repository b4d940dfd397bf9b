-- name: returns
-- description: Close-to-close returns of one symbol's mid per bar (seconds): simple and log return against the previous bar with quotes; newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- close = the bar's last mid in event order. The first bar of the range has no return (NULL);
-- bars without quotes are absent, so a return may span several intervals (see prev_bar_start).
SELECT bar_start, symbol, close, prev_bar_start, simple_return, log_return
FROM
(
    SELECT
        bar_start,
        symbol,
        close,
        lagInFrame(toNullable(bar_start), 1) OVER w AS prev_bar_start,
        close / lagInFrame(toNullable(close), 1) OVER w - 1 AS simple_return,
        ln(close / lagInFrame(toNullable(close), 1) OVER w) AS log_return
    FROM
    (
        SELECT
            fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                    * toInt64({interval:UInt32}) * 1000000000) AS bar_start,
            symbol,
            argMax((bid + ask) / 2, (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS close
        FROM wh.market_ticks
        WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
          AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
        GROUP BY bar_start, symbol
    )
    WINDOW w AS (ORDER BY bar_start ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
