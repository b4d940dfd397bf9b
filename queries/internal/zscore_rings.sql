-- name: zscore_rings
-- description: building block: the newest `rows` stored quotes of each instrument of `symbols` since `since`, in window order newest first — the stored z-score's ring buffers after a restart, in one query (warehouse/sinks/zscores.py)
-- param symbols: Array(String)
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param rows: UInt32 = 118
SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size
FROM
(
    SELECT exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size, ask_size,
           row_number() OVER (PARTITION BY exchange, symbol
                              ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
                                       bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST) AS place
    FROM wh.market_ticks
    WHERE has({symbols:Array(String)}, symbol) AND timestamp >= {since:DateTime64(9, 'UTC')}
)
WHERE place <= {rows:UInt32}
