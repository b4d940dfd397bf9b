-- name: navs_at
-- description: building block: every trader's NAV at `at` and its rank (1 = highest NAV; ties by trader)
-- param at: DateTime64(9, 'UTC')
--
-- NAV = initial cash + Σ cash flows + Σ position · mark (positions_at). Traders created
-- after `at` are left out; traders without fills keep their initial cash.
SELECT
    row_number() OVER (ORDER BY nav DESC, trader) AS rank,
    trader,
    nav,
    cash,
    positions_value,
    nav - initial_cash AS pnl,
    nav / initial_cash - 1 AS total_return
FROM
(
    SELECT
        t.trader AS trader,
        t.initial_cash AS initial_cash,
        t.initial_cash + coalesce(p.cash_flow, 0.) AS cash,
        coalesce(p.positions_value, 0.) AS positions_value,
        t.initial_cash + coalesce(p.cash_flow, 0.) + coalesce(p.positions_value, 0.) AS nav
    FROM wh.traders AS t
    LEFT JOIN
    (
        SELECT trader, sum(cash_flow) AS cash_flow, sum(position * mark) AS positions_value
        FROM ({{positions_at}})
        GROUP BY trader
    ) AS p ON t.trader = p.trader
    WHERE t.created_at < {at:DateTime64(9, 'UTC')}
)
