-- name: daily_pnl
-- description: One trader's P&L per UTC day (or per `interval` seconds): opening and closing NAV, P&L, return, fees and fills of the day
-- param trader: String
-- param interval: UInt32 = 86400 in [1, 31622400]
-- param since: DateTime64(9, 'UTC') = 1970-01-01
-- param until: DateTime64(9, 'UTC') = 2262-01-01
--
-- A day is [day, day + 1d); nav_close = NAV at its end (nav_series), nav_open = the previous
-- listed day's close (the initial cash for the first). Days without activity are absent.
SELECT
    d.day AS day,
    d.trader AS trader,
    d.nav_open AS nav_open,
    d.nav_close AS nav_close,
    d.nav_close - d.nav_open AS pnl,
    d.nav_close / d.nav_open - 1 AS day_return,
    coalesce(f.fees, 0.) AS fees,
    coalesce(f.fills, 0) AS fills
FROM
(
    SELECT
        fromUnixTimestamp64Nano(toUnixTimestamp64Nano(ts) - toInt64({interval:UInt32}) * 1000000000) AS day,
        trader,
        coalesce(lagInFrame(toNullable(nav), 1) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING),
                 initial_cash) AS nav_open,
        nav AS nav_close
    FROM ({{nav_series}})
) AS d
LEFT JOIN
(
    SELECT
        fromUnixTimestamp64Nano(intDiv(toUnixTimestamp64Nano(timestamp), toInt64({interval:UInt32}) * 1000000000)
                                * toInt64({interval:UInt32}) * 1000000000) AS day,
        sum(fee) AS fees,
        count() AS fills
    FROM wh.fills
    WHERE trader = {trader:String}
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY day
) AS f ON d.day = f.day
ORDER BY day
