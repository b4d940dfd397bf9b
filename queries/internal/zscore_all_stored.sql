-- name: zscore_all_stored
-- description: every quote's stored default-window z-score (wh.quote_zscores), folded to the checksum of zscore_all (benchmark)
SELECT count() AS rows, sum(z_score) AS z_sum, countIf(z_score IS NULL) AS z_nulls
FROM wh.quote_zscores FINAL
