-- name: instruments
-- description: the instrument catalog: per exchange and symbol, its asset class, first and last event time (all ticks; quotes), quotes and trades stored
-- param symbols: Array(String) = []
--
-- Kept by the sinks (DuckDB, in the transaction of the rows) and by ClickHouse's materialized
-- views; aggregated here because ClickHouse merges its parts in the background. `symbols`
-- (default: all) lets the sinks and the z-score read just the rows they need.
SELECT exchange, symbol, asset_class, first_ts, last_ts,
       if(n_quotes = 0, NULL, fq) AS first_quote_ts, if(n_quotes = 0, NULL, lq) AS last_quote_ts,
       n_quotes AS quotes, n_trades AS trades
FROM
(
    SELECT exchange, symbol, min(asset_class) AS asset_class, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
           min(first_quote_ts) AS fq, max(last_quote_ts) AS lq,
           CAST(sum(quotes) AS Int64) AS n_quotes, CAST(sum(trades) AS Int64) AS n_trades
    FROM wh.instruments
    WHERE empty({symbols:Array(String)}) OR has({symbols:Array(String)}, symbol)
    GROUP BY exchange, symbol
)
ORDER BY exchange, symbol
