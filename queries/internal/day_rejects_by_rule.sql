-- name: day_rejects_by_rule
-- description: one UTC day's rejects per rule (Dagster's materialization metadata)
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
SELECT rule, count() AS rejects
FROM wh.rejects
WHERE timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
GROUP BY rule
ORDER BY rejects DESC, rule
