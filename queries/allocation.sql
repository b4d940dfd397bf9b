-- name: allocation
-- description: One trader's holdings by asset class at time `at`: net and gross exposure (position · mark) and share of gross exposure and of NAV
-- param trader: String
-- param at: DateTime64(9, 'UTC') = 2262-01-01
--
-- gross_share sums to 1 over the asset classes with open positions; nav_share = net / NAV.
-- The warehouse has no sector reference data yet: asset class is the grouping.
SELECT
    a.asset_class AS asset_class,
    a.positions AS positions,
    a.net_exposure AS net_exposure,
    a.gross_exposure AS gross_exposure,
    a.gross_exposure / sum(a.gross_exposure) OVER () AS gross_share,
    a.net_exposure / n.nav AS nav_share
FROM
(
    SELECT
        trader,
        asset_class,
        count() AS positions,
        sum(position * mark) AS net_exposure,
        sum(abs(position * mark)) AS gross_exposure
    FROM ({{positions_at}})
    WHERE trader = {trader:String} AND position != 0
    GROUP BY trader, asset_class
) AS a
INNER JOIN (SELECT trader, nav FROM ({{navs_at}}) WHERE trader = {trader:String}) AS n ON a.trader = n.trader
ORDER BY gross_exposure DESC, asset_class
