-- name: existing_fills
-- description: building block: which of some fill ids are stored (the webhook ledger writer stores each fill once)
-- param ids: Array(String)
SELECT fill_id FROM wh.fills WHERE has({ids:Array(String)}, fill_id)
