-- name: existing_stream_losses
-- description: loss events already stored for a group and topic (idempotent writes)
-- param group_id: String
-- param topic: String
SELECT group_id, topic, partition, from_offset
FROM wh.stream_losses
WHERE group_id = {group_id:String} AND topic = {topic:String}
