-- name: equity_curve
-- description: One trader's equity curve: cash, positions value and NAV at the end of every `interval` bucket (seconds) with activity, P&L per point, running peak and drawdown
-- param trader: String
-- param interval: UInt32 = 3600 in [1, 31622400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
--
-- NAV = cash + Σ position · mark, from wh.fills and the warehouse's quotes (see
-- queries/internal/nav_series.sql). pnl = NAV − previous point's NAV (the first point
-- against the initial cash); peak = max(initial cash, NAV so far); drawdown = NAV / peak − 1 (≤ 0).
SELECT
    ts,
    trader,
    cash,
    positions_value,
    nav,
    nav - coalesce(lagInFrame(toNullable(nav), 1) OVER w_all, initial_cash) AS pnl,
    greatest(initial_cash, max(nav) OVER w_run) AS peak,
    nav / greatest(initial_cash, max(nav) OVER w_run) - 1 AS drawdown
FROM ({{nav_series}})
WINDOW
    w_all AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING),
    w_run AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY ts
