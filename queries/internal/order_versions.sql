-- name: order_versions
-- description: building block: the stored state of some orders (the webhook ledger writer keeps each order's newest state)
-- param ids: Array(String)
SELECT order_id, updated_at, status, filled_qty FROM wh.orders WHERE has({ids:Array(String)}, order_id)
