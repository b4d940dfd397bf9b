-- name: zscore
-- description: Rolling z-score of the bid: mean and population std of the last `window` quotes of one symbol, newest first
-- param symbol: String
-- param exchange: String = ''
-- param window: UInt32 = 60 in [1, 1000000]
-- param limit: UInt64 = 100
-- param since: DateTime64(9, 'UTC') = 1970-01-01
--
-- Order: event time, ties by receipt time, then sequence number, then the quote's own values
-- (bid, ask, sizes: two distinct quotes never tie, so every row's window is defined). Warm-up rows (fewer
-- than `window` quotes so far) are included, computed over the rows available.
-- rolling_std is the population std computed two-pass over the window's prices
-- (mean first, then squared deviations): sliding sum-of-squares and even Welford lose
-- digits when std is tiny next to the price (BTC ≈ 9,681, std ≈ 0.5). Both passes sum
-- differences from the window's first price (`anchor`), never prices themselves: a mean
-- summed at price magnitude carries price·2⁻⁵² of rounding, which at BTC ≈ 97,000 and a std
-- of a few cents moves z by more than 1e-8. When every price
-- in the window is equal, rolling_std is exactly 0 and z_score is NULL.
-- Only the newest `limit + window - 1` quotes are read: enough for `limit` full windows.
-- `since` bounds the scan (the caller must know that many quotes are newer: warehouse.analytics
-- derives it from the instrument catalog and checks `window_rows` of the oldest row returned).
SELECT
    timestamp,
    symbol,
    bid,
    anchor + deviation AS rolling_mean,
    if(arrayMin(prices) = arrayMax(prices), 0.,
       sqrt(arraySum(arrayMap(p -> (p - anchor - deviation) * (p - anchor - deviation), prices)) / n)) AS rolling_std,
    if(arrayMin(prices) = arrayMax(prices), NULL, (bid - anchor - deviation) / rolling_std) AS z_score,
    n AS window_rows
FROM
(
    SELECT
        timestamp,
        received_at,
        seq,
        symbol,
        bid,
        ask,
        bid_size,
        ask_size,
        groupArray(bid) OVER w AS prices,
        count() OVER w AS n,
        prices[1] AS anchor,
        arraySum(arrayMap(p -> p - anchor, prices)) / n AS deviation
    FROM
    (
        SELECT timestamp, received_at, seq, symbol, bid, ask, bid_size, ask_size
        FROM wh.market_ticks
        WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
          AND timestamp >= {since:DateTime64(9, 'UTC')}
        ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
                 bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST
        LIMIT {limit:UInt64} + {window:UInt32} - 1
    )
    WINDOW w AS (ORDER BY timestamp, received_at, seq, bid, ask, bid_size, ask_size
                 ROWS BETWEEN {window:UInt32} - 1 PRECEDING AND CURRENT ROW)
)
ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
         bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST
LIMIT {limit:UInt64}
