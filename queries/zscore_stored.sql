-- name: zscore_stored
-- description: The rolling z-score of the bid over the default 60-quote window as stored with each quote (wh.quote_zscores), newest first: the numbers of queries/zscore.sql without recomputing them
-- param symbol: String
-- param exchange: String
-- param limit: UInt64 = 100
-- param since: DateTime64(9, 'UTC') = 1970-01-01
--
-- The sinks write each quote's row with it and rewrite the ≤ 59 rows after a quote stored late
-- (warehouse/sinks/zscores.py); ClickHouse keeps the newest version of each (FINAL). Columns and
-- order as queries/zscore.sql with window = 60; one instrument (exchange and symbol both given).
SELECT timestamp, symbol, bid, rolling_mean, rolling_std, z_score, window_rows
FROM wh.quote_zscores FINAL
WHERE exchange = {exchange:String} AND symbol = {symbol:String} AND timestamp >= {since:DateTime64(9, 'UTC')}
ORDER BY timestamp DESC, received_at DESC, seq DESC NULLS FIRST, bid DESC, ask DESC,
         bid_size DESC NULLS FIRST, ask_size DESC NULLS FIRST
LIMIT {limit:UInt64}
