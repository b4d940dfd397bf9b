-- name: realized_vol
-- description: Realized volatility of one symbol per period: sqrt(Σ r²) of log returns of the mid sampled every `interval` seconds; newest `limit` periods, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param period: UInt32 = 3600 in [1, 31622400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- Sampling: the last mid of each `interval` bar with quotes (as in `returns`). A return
-- belongs to the period of the bar it ends in. Not annualised: multiply by
-- sqrt(periods per year) for that. returns = number of returns summed.
SELECT period_start, symbol, returns, realized_var, sqrt(realized_var) AS realized_vol
FROM
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(bar_start), toInt64({period:UInt32}) * 1000000000)
                                * toInt64({period:UInt32}) * 1000000000) AS period_start,
        symbol,
        count() AS returns,
        sum(r * r) AS realized_var
    FROM
    (
        SELECT
            bar_start,
            symbol,
            ln(close / lagInFrame(toNullable(close), 1) OVER (ORDER BY bar_start ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) AS r
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
    )
    WHERE r IS NOT NULL
    GROUP BY period_start, symbol
    ORDER BY period_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY period_start
