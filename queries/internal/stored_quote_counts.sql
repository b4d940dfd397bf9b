-- name: stored_quote_counts
-- description: building block: quotes stored per instrument of `symbols`, counted in the table itself (the stored z-score's check of a catalog that shows none: ClickHouse's is kept by views)
-- param symbols: Array(String)
SELECT exchange, symbol, count() AS quotes
FROM wh.market_ticks
WHERE has({symbols:Array(String)}, symbol)
GROUP BY exchange, symbol
