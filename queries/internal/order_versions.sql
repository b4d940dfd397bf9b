-- name: order_versions
-- description: building block: the stored state time of some orders (the webhook ledger writer keeps each order's newest state)
-- param ids: Array(String)
SELECT order_id, max(updated_at) AS updated_at FROM wh.orders WHERE has({ids:Array(String)}, order_id) GROUP BY order_id
