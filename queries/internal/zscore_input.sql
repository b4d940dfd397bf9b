-- name: zscore_input
-- description: building block: every quote's bid in the z-score window order (instrument, then time), for the O(1) kernel (analytics/rolling.py)
SELECT exchange, symbol, timestamp, bid
FROM wh.market_ticks
ORDER BY exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size
