-- name: replay_slices
-- description: building block of the replay: the event-time slices (index = ns // slice_ns) holding some symbols' ticks, with counts
-- param symbols: Array(String)
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
-- param slice_ns: Int64
--
-- The replay visits only these slices, so empty stretches of a long range cost nothing.
SELECT slice, sum(n) AS ticks
FROM
(
    SELECT intDiv(toUnixTimestamp64Nano(timestamp), {slice_ns:Int64}) AS slice, count() AS n
    FROM wh.market_ticks
    WHERE has({symbols:Array(String)}, symbol)
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY slice
    UNION ALL
    SELECT intDiv(toUnixTimestamp64Nano(timestamp), {slice_ns:Int64}) AS slice, count() AS n
    FROM wh.trades
    WHERE has({symbols:Array(String)}, symbol)
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY slice
)
GROUP BY slice
ORDER BY slice
