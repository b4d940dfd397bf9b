-- name: existing_rejects
-- description: reject keys already stored for a source and offset range (idempotent writes)
-- param source: String
-- param lo: Int64
-- param hi: Int64
SELECT source, source_offset, rule
FROM wh.rejects
WHERE source = {source:String}
  AND source_offset BETWEEN {lo:Int64} AND {hi:Int64}
