-- name: imbalance
-- description: Top-of-book order-book imbalance (Vb − Va) / (Vb + Va) of one symbol per bar (seconds): mean over the quotes and the closing value; newest `limit` bars, oldest first
-- param symbol: String
-- param exchange: String = ''
-- param interval: UInt32 = 60 in [1, 604800]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 1000
--
-- Vb, Va = bid and ask sizes. Quotes with Vb + Va = 0 carry no imbalance and are left out.
-- +1 = only bids, −1 = only asks. imbalance_close is the bar's last quote in event order.
SELECT bar_start, symbol, quotes, imbalance_mean, imbalance_close
FROM
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                * toInt64({interval:UInt32}) * 1000000000) AS bar_start,
        symbol,
        count() AS quotes,
        avg((bid_size - ask_size) / (bid_size + ask_size)) AS imbalance_mean,
        argMax((bid_size - ask_size) / (bid_size + ask_size),
               (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS imbalance_close
    FROM wh.market_ticks
    WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String}) AND bid_size + ask_size > 0
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY bar_start, symbol
    ORDER BY bar_start DESC
    LIMIT {limit:UInt64}
)
ORDER BY bar_start
