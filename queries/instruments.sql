-- name: instruments
-- description: the instrument catalog: per exchange and symbol, its asset class, first and last event time, quotes and trades stored
--
-- Kept by the sinks (DuckDB, in the transaction of the rows) and by ClickHouse's materialized
-- views; aggregated here because ClickHouse merges its parts in the background.
SELECT exchange, symbol, min(asset_class) AS asset_class, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
       CAST(sum(quotes) AS Int64) AS quotes, CAST(sum(trades) AS Int64) AS trades
FROM wh.instruments
GROUP BY exchange, symbol
ORDER BY exchange, symbol
