-- name: day_check
-- description: one UTC day of the warehouse, for Dagster's checks: ticks, distinct dedup keys, rejects, gaps
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
--
-- The quote key is records.py's: (exchange, symbol, timestamp) with seq when it is set, else
-- received_at and the prices and sizes. Rejects and gaps are counted by event time (a reject
-- without one is filed at the epoch, on no day but 1970-01-01).
SELECT
    (SELECT count() FROM wh.market_ticks WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}) AS quotes,
    (SELECT count() FROM (
        SELECT DISTINCT exchange, symbol, timestamp, coalesce(seq, toUnixTimestamp64Nano(received_at)) AS disc,
               if(seq IS NULL, bid, NULL) AS b, if(seq IS NULL, ask, NULL) AS a,
               if(seq IS NULL, bid_size, NULL) AS bs, if(seq IS NULL, ask_size, NULL) AS az
        FROM wh.market_ticks
        WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    )) AS quote_keys,
    (SELECT count() FROM wh.trades WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}) AS trades,
    (SELECT count() FROM (
        SELECT DISTINCT exchange, symbol, timestamp, trade_id FROM wh.trades
        WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    )) AS trade_keys,
    (SELECT count() FROM wh.rejects WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}) AS rejects,
    (SELECT count() FROM wh.gaps WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}) AS gaps
