-- name: latest_quotes
-- description: the newest quote of every instrument (exchange, symbol), or of one symbol's venues; QuestDB's LATEST ON
-- param symbol: String = ''
--
-- QuestDB only (LATEST ON reads each partition's newest row per key from the end, no sort).
-- "Newest" is by event time (the designated timestamp); two quotes of an instrument at the same
-- nanosecond: the one QuestDB stored last. spread = ask − bid.
SELECT timestamp, exchange, symbol, asset_class, bid, ask, ask - bid AS spread, bid_size, ask_size, received_at, seq
FROM
(
    SELECT * FROM wh_market_ticks
    WHERE {symbol:String} = '' OR symbol = {symbol:String}
    LATEST ON timestamp PARTITION BY exchange, symbol
)
ORDER BY exchange, symbol
