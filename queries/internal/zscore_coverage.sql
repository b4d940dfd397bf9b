-- name: zscore_coverage
-- description: building block: per instrument of `symbols`, the quotes stored from `lo` to `hi` and the stored z-score rows among them — a retried batch recomputes only instruments where some are missing (warehouse/sinks/zscores.py)
-- param symbols: Array(String)
-- param lo: DateTime64(9, 'UTC')
-- param hi: DateTime64(9, 'UTC')
SELECT q.exchange AS exchange, q.symbol AS symbol, q.quotes AS quotes, coalesce(z.scored, 0) AS scored
FROM
(
    SELECT exchange, symbol, count() AS quotes
    FROM wh.market_ticks
    WHERE has({symbols:Array(String)}, symbol)
      AND timestamp >= {lo:DateTime64(9, 'UTC')} AND timestamp <= {hi:DateTime64(9, 'UTC')}
    GROUP BY exchange, symbol
) AS q
LEFT JOIN
(
    SELECT exchange, symbol, count() AS scored
    FROM wh.quote_zscores FINAL
    WHERE has({symbols:Array(String)}, symbol)
      AND timestamp >= {lo:DateTime64(9, 'UTC')} AND timestamp <= {hi:DateTime64(9, 'UTC')}
    GROUP BY exchange, symbol
) AS z ON q.exchange = z.exchange AND q.symbol = z.symbol
