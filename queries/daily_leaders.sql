-- name: daily_leaders
-- description: The stored daily leaderboard (wh.leaderboard_daily, kept by `wh refresh`): top `limit` traders by NAV at the end of `day`
-- param day: Date
-- param limit: UInt64 = 10
SELECT day, rank, trader, nav, cash, positions_value, pnl, total_return
FROM wh.leaderboard_daily
WHERE day = {day:Date}
ORDER BY rank
LIMIT {limit:UInt64}
