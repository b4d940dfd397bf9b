-- name: leaderboard
-- description: Traders ranked by NAV at time `at` (marked to the warehouse's quotes): the top `limit`
-- param at: DateTime64(9, 'UTC') = 2262-01-01
-- param limit: UInt64 = 10
--
-- rank 1 = highest NAV; equal NAVs rank by trader id. pnl = NAV − initial cash.
SELECT rank, trader, nav, cash, positions_value, pnl, total_return
FROM ({{navs_at}})
ORDER BY rank
LIMIT {limit:UInt64}
