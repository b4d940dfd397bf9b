-- name: spreads
-- description: Spread and mid statistics of one symbol's quotes per bar (seconds): mean/min/max spread, mean spread in bps of mid, mean/min/max mid; newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- spread = ask − bid; spread_bps = 10,000 · spread / mid, averaged over the quotes of the bar.
SELECT bar_start, symbol, quotes, spread_mean, spread_min, spread_max, spread_bps_mean, mid_mean, mid_min, mid_max
FROM
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                * toInt64({interval:UInt32}) * 1000000000) AS bar_start,
        symbol,
        count() AS quotes,
        avg(ask - bid) AS spread_mean,
        min(ask - bid) AS spread_min,
        max(ask - bid) AS spread_max,
        avg(10000 * (ask - bid) / ((bid + ask) / 2)) AS spread_bps_mean,
        avg((bid + ask) / 2) AS mid_mean,
        min((bid + ask) / 2) AS mid_min,
        max((bid + ask) / 2) AS mid_max
    FROM wh.market_ticks
    WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY bar_start, symbol
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
