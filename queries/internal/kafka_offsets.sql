-- name: kafka_offsets
-- description: next offsets to consume per partition, as stored with the rows
-- param group_id: String
-- param topic: String
SELECT partition, next_offset
FROM wh.kafka_offsets
WHERE group_id = {group_id:String} AND topic = {topic:String}
ORDER BY partition
