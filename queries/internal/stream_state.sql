-- name: stream_state
-- description: the sanitizer state stored with a group's offsets (warm start after a restart)
-- param group_id: String
-- param topic: String
SELECT component, data
FROM wh.stream_state
WHERE group_id = {group_id:String} AND topic = {topic:String}
