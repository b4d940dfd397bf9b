-- name: stream_losses
-- description: offset ranges the broker expired before the group read them (wh status)
-- param group_id: String
-- param topic: String
SELECT partition, count() AS events, sum(missing) AS missing, min(from_offset) AS first_lost,
       max(to_offset) AS last_lost, max(detected_at) AS last_detected
FROM wh.stream_losses
WHERE group_id = {group_id:String} AND topic = {topic:String}
GROUP BY partition
ORDER BY partition
