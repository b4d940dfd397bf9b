-- name: venues
-- description: building block: the exchanges a symbol has quotes or trades on
-- param symbol: String
--
-- A symbol on two venues is two instruments (two books): the market analytics take one
-- exchange; warehouse.analytics.run fills it in when the symbol has only one.
SELECT DISTINCT exchange
FROM
(
    SELECT DISTINCT exchange FROM wh.market_ticks WHERE symbol = {symbol:String}
    UNION ALL
    SELECT DISTINCT exchange FROM wh.trades WHERE symbol = {symbol:String}
)
ORDER BY exchange
