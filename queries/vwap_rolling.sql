-- name: vwap_rolling
-- description: Rolling VWAP of one symbol over its last `window` trades (Σ price·size / Σ size), per trade, newest first
-- param symbol: String
-- param exchange: String = ''
-- param window: UInt32 = 100 in [1, 1000000]
-- param limit: UInt64 = 100
--
-- Order: event time, receipt time, seq, trade_id. Warm-up rows use the trades available.
-- Only the newest `limit + window - 1` trades are read: enough for `limit` full windows.
SELECT timestamp, symbol, price, size, vwap, window_volume
FROM
(
    SELECT
        timestamp, received_at, seq, trade_id, symbol, price, size,
        sum(price * size) OVER w / sum(size) OVER w AS vwap,
        sum(size) OVER w AS window_volume
    FROM
    (
        SELECT timestamp, received_at, seq, trade_id, symbol, price, size
        FROM wh.trades
        WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
        ORDER BY timestamp DESC, received_at DESC, seq DESC, trade_id DESC
        LIMIT {limit:UInt64} + {window:UInt32} - 1
    )
    WINDOW w AS (ORDER BY timestamp, received_at, seq, trade_id ROWS BETWEEN {window:UInt32} - 1 PRECEDING AND CURRENT ROW)
)
ORDER BY timestamp DESC, received_at DESC, seq DESC, trade_id DESC
LIMIT {limit:UInt64}
