-- name: existing_rejects_of
-- description: reject keys already stored for whole sources (one Arrow message each: kafka:topic/partition@offset)
-- param sources: Array(String)
SELECT source, source_offset, rule
FROM wh.rejects
WHERE has({sources:Array(String)}, source)
