-- The instrument catalog: one row per (exchange, symbol) with its asset class, first and last
-- event time and row counts. Kept by the DuckDB sink in the same transaction as the rows it
-- counts (only rows newly stored: a re-import changes nothing). Market queries resolve venues
-- and base assets from it (`wh query zscore BTC`); base/quote are derived from each venue's
-- symbol convention in Python (warehouse/analytics/instruments.py), not stored.
CREATE TABLE IF NOT EXISTS wh.instruments
(
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    asset_class  VARCHAR NOT NULL,
    first_ts     TIMESTAMP_NS NOT NULL,
    last_ts      TIMESTAMP_NS NOT NULL,
    first_quote_ts TIMESTAMP_NS,  -- NULL: no quote yet (the z-score's scan bound uses the quotes' span)
    last_quote_ts  TIMESTAMP_NS,
    quotes       BIGINT NOT NULL,
    trades       BIGINT NOT NULL,
    PRIMARY KEY (exchange, symbol)
);

-- what is already stored (a warehouse that predates the catalog)
INSERT OR REPLACE INTO wh.instruments
SELECT exchange, symbol, min(asset_class), min(first_ts), max(last_ts), min(first_quote_ts), max(last_quote_ts),
       sum(quotes), sum(trades)
FROM
(
    SELECT exchange, symbol, min(asset_class) AS asset_class, min(timestamp) AS first_ts,
           max(timestamp) AS last_ts, min(timestamp) AS first_quote_ts, max(timestamp) AS last_quote_ts,
           count(*) AS quotes, 0 AS trades
    FROM wh.market_ticks GROUP BY exchange, symbol
    UNION ALL
    SELECT exchange, symbol, min(asset_class), min(timestamp), max(timestamp), NULL, NULL, 0, count(*)
    FROM wh.trades GROUP BY exchange, symbol
)
GROUP BY exchange, symbol;
