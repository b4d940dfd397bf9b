-- name: venues
-- description: building block: the exchanges a symbol has quotes or trades on (QuestDB)
-- param symbol: String
SELECT DISTINCT exchange
FROM
(
    SELECT exchange FROM wh_market_ticks WHERE symbol = {symbol:String}
    UNION ALL
    SELECT exchange FROM wh_trades WHERE symbol = {symbol:String}
)
ORDER BY exchange
