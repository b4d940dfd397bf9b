-- name: positions_at
-- description: building block: every trader's position, cash flow and mark per instrument (exchange, symbol) at `at`
-- param at: DateTime64(9, 'UTC')
--
-- From the fills strictly before `at`: position = Σ ±qty (buy +, sell −); cash_flow =
-- Σ (sell qty·price − buy qty·price − fee). mark = the instrument's last quote mid before
-- `at` in event order, on the fill's exchange; an instrument with no quote yet is marked
-- at its last fill price.
SELECT
    f.trader AS trader,
    f.exchange AS exchange,
    f.symbol AS symbol,
    f.asset_class AS asset_class,
    f.position AS position,
    f.cash_flow AS cash_flow,
    if(coalesce(m.mid, 0.) > 0., m.mid, f.last_price) AS mark
FROM
(
    SELECT
        trader,
        exchange,
        symbol,
        any(asset_class) AS asset_class,
        sum(if(side = 'buy', qty, -qty)) AS position,
        sum(if(side = 'buy', -qty * price, qty * price) - fee) AS cash_flow,
        argMax(price, (timestamp, fill_id)) AS last_price
    FROM wh.fills
    WHERE timestamp < {at:DateTime64(9, 'UTC')}
    GROUP BY trader, exchange, symbol
) AS f
LEFT JOIN
(
    SELECT exchange, symbol, argMax((bid + ask) / 2, (timestamp, received_at, ifNull(seq, -1), bid, ask)) AS mid
    FROM wh.market_ticks
    WHERE timestamp < {at:DateTime64(9, 'UTC')}
      AND symbol IN (SELECT DISTINCT symbol FROM wh.fills WHERE timestamp < {at:DateTime64(9, 'UTC')})
    GROUP BY exchange, symbol
) AS m ON f.exchange = m.exchange AND f.symbol = m.symbol
