-- name: drawdown
-- description: One trader's maximum drawdown over its equity curve (points every `interval` seconds): depth, trough time, NAV at peak and trough, current drawdown and final NAV
-- param trader: String
-- param interval: UInt32 = 3600 in [1, 31622400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
--
-- Drawdowns are fractions ≤ 0 (−0.12 = 12 % below the peak); the peak starts at the initial
-- cash. The trough is the earliest point of the deepest drawdown. Finer intervals see deeper
-- intraday troughs.
SELECT
    trader,
    count() AS points,
    min(drawdown) AS max_drawdown,
    argMin(ts, (drawdown, ts)) AS trough_ts,
    argMin(peak, (drawdown, ts)) AS peak_nav,
    argMin(nav, (drawdown, ts)) AS trough_nav,
    argMax(drawdown, ts) AS current_drawdown,
    argMax(nav, ts) AS final_nav
FROM
(
    SELECT
        trader,
        ts,
        nav,
        greatest(initial_cash, max(nav) OVER w) AS peak,
        nav / greatest(initial_cash, max(nav) OVER w) - 1 AS drawdown
    FROM ({{nav_series}})
    WINDOW w AS (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
GROUP BY trader
