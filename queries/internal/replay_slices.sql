-- name: replay_slices
-- description: building block of the replay: the event-time slices (index = ns // slice_ns) holding some symbols' ticks, with counts per venue
-- param symbols: Array(String)
-- param exchange: String = ''
-- param since: DateTime64(9, 'UTC')
-- param until: DateTime64(9, 'UTC')
-- param slice_ns: Int64
--
-- The replay visits only these slices, so empty stretches of a long range cost nothing;
-- the venues tell the simulator which exchange each symbol's ticks come from. exchange = ''
-- means every venue. Unordered: the replay sums and sorts the plan itself.
SELECT slice, exchange, symbol, sum(n) AS ticks
FROM
(
    SELECT intDiv(toUnixTimestamp64Nano(timestamp), {slice_ns:Int64}) AS slice, exchange, symbol, count() AS n
    FROM wh.market_ticks
    WHERE has({symbols:Array(String)}, symbol) AND ({exchange:String} = '' OR exchange = {exchange:String})
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY slice, exchange, symbol
    UNION ALL
    SELECT intDiv(toUnixTimestamp64Nano(timestamp), {slice_ns:Int64}) AS slice, exchange, symbol, count() AS n
    FROM wh.trades
    WHERE has({symbols:Array(String)}, symbol) AND ({exchange:String} = '' OR exchange = {exchange:String})
      AND timestamp >= {since:DateTime64(9, 'UTC')} AND timestamp < {until:DateTime64(9, 'UTC')}
    GROUP BY slice, exchange, symbol
)
GROUP BY slice, exchange, symbol
