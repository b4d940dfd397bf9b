-- name: zscore_version
-- description: building block: the newest version in wh.quote_zscores (a writer's versions start above it, whatever its clock says)
SELECT max(version) AS version FROM wh.quote_zscores
