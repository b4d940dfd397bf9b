-- name: trader_rank
-- description: One trader's place in the leaderboard at time `at`: rank, number of traders, NAV, percentile
-- param trader: String
-- param at: DateTime64(9, 'UTC') = 2262-01-01
--
-- percentile = share of traders ranked at or below this one (1.0 = the top).
SELECT rank, traders, trader, nav, pnl, total_return, (traders - rank + 1) / traders AS percentile
FROM
(
    SELECT rank, count() OVER () AS traders, trader, nav, pnl, total_return
    FROM ({{navs_at}})
)
WHERE trader = {trader:String}
