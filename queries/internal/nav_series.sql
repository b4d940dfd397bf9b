-- name: nav_series
-- description: building block: one trader's NAV at the end of every `interval` bucket (seconds) with activity
-- param trader: String
-- param interval: UInt32 = 3600 in [1, 31622400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
--
-- Points: the ends of the buckets (epoch-aligned) in which the trader traded or one of its
-- instruments (exchange, symbol) quoted, from its first fill on, for events in [since, until). The NAV at point
-- ts counts every fill and quote strictly before ts: cash = initial cash + Σ cash flows;
-- positions_value = Σ position · mark, mark = the last mid on the fill's exchange before ts
-- (the last fill price while an instrument has no quote yet).
SELECT
    s.trader AS trader,
    s.ts AS ts,
    tr.initial_cash AS initial_cash,
    tr.initial_cash + coalesce(c.cash_flow, 0.) AS cash,
    s.positions_value AS positions_value,
    tr.initial_cash + coalesce(c.cash_flow, 0.) + s.positions_value AS nav
FROM
(
    SELECT
        g.trader AS trader,
        g.ts AS ts,
        sum(if(coalesce(p.position, 0.) = 0., 0.,
               p.position * if(coalesce(m.mid, 0.) > 0., m.mid, p.last_price))) AS positions_value
    FROM
    (
        SELECT k.trader AS trader, k.ts AS ts, y.exchange AS exchange, y.symbol AS symbol
        FROM
        (
            SELECT DISTINCT {trader:String} AS trader, ts
            FROM
            (
                SELECT fromUnixTimestamp64Nano((intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000) + 1)
                                               * toInt64({interval:UInt32}) * 1000000000) AS ts
                FROM wh.market_ticks
                WHERE (exchange, symbol) IN (SELECT DISTINCT exchange, symbol FROM wh.fills WHERE trader = {trader:String})
                  AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
                UNION ALL
                SELECT fromUnixTimestamp64Nano((intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000) + 1)
                                               * toInt64({interval:UInt32}) * 1000000000) AS ts
                FROM wh.fills
                WHERE trader = {trader:String}
                  AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
            )
            WHERE ts > (SELECT min(timestamp) FROM wh.fills WHERE trader = {trader:String})
        ) AS k
        CROSS JOIN (SELECT DISTINCT exchange, symbol FROM wh.fills WHERE trader = {trader:String}) AS y
    ) AS g
    ASOF LEFT JOIN
    (   -- the last mid of every bucket, stamped with the bucket's end
        SELECT
            exchange,
            symbol,
            fromUnixTimestamp64Nano((intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000) + 1)
                                    * toInt64({interval:UInt32}) * 1000000000) AS ts,
            argMax((bid + ask) / 2, (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS mid
        FROM wh.market_ticks
        WHERE (exchange, symbol) IN (SELECT DISTINCT exchange, symbol FROM wh.fills WHERE trader = {trader:String})
          AND timestamp < {until:DateTime64(9, 'UTC')}
        GROUP BY exchange, symbol, ts
    ) AS m ON g.exchange = m.exchange AND g.symbol = m.symbol AND g.ts >= m.ts
    ASOF LEFT JOIN
    (   -- the position after every fill time
        SELECT
            exchange,
            symbol,
            timestamp,
            sum(dq) OVER (PARTITION BY exchange, symbol ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS position,
            last_price
        FROM
        (
            SELECT exchange, symbol, timestamp, sum(if(side = 'buy', qty, -qty)) AS dq, argMax(price, fill_id) AS last_price
            FROM wh.fills
            WHERE trader = {trader:String} AND timestamp < {until:DateTime64(9, 'UTC')}
            GROUP BY exchange, symbol, timestamp
        )
    ) AS p ON g.exchange = p.exchange AND g.symbol = p.symbol AND g.ts > p.timestamp
    GROUP BY g.trader, g.ts
) AS s
ASOF LEFT JOIN
(   -- the cumulative cash flow after every fill time
    SELECT
        trader,
        timestamp,
        sum(cf) OVER (PARTITION BY trader ORDER BY timestamp ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cash_flow
    FROM
    (
        SELECT trader, timestamp, sum(if(side = 'buy', -qty * price, qty * price) - fee) AS cf
        FROM wh.fills
        WHERE trader = {trader:String} AND timestamp < {until:DateTime64(9, 'UTC')}
        GROUP BY trader, timestamp
    )
) AS c ON s.trader = c.trader AND s.ts > c.timestamp
CROSS JOIN (SELECT initial_cash FROM wh.traders WHERE trader = {trader:String}) AS tr
