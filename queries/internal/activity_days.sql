-- name: activity_days
-- description: UTC days with trades and days with fills — the partitions `wh refresh` rebuilds by default
SELECT 'bars_1m' AS target, day FROM (SELECT DISTINCT toDate(timestamp) AS day FROM wh.trades)
UNION ALL
SELECT 'leaderboard_daily' AS target, day FROM (SELECT DISTINCT toDate(timestamp) AS day FROM wh.fills)
ORDER BY target, day
