-- name: instruments_for
-- description: building block: the catalog rows of some symbols (the DuckDB sink merges a batch into them)
-- param symbols: Array(String)
SELECT exchange, symbol, min(asset_class) AS asset_class, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
       CAST(sum(quotes) AS Int64) AS quotes, CAST(sum(trades) AS Int64) AS trades
FROM wh.instruments
WHERE has({symbols:Array(String)}, symbol)
GROUP BY exchange, symbol
