-- name: trader_span
-- description: building block: the time span an equity curve of one trader covers
-- param trader: String
--
-- The equity curve (nav_series) has points from the trader's first fill to the last quote of
-- its instruments (or its last fill, if later): `wh plot equity` picks its interval from this span.
SELECT
    (SELECT min(timestamp) FROM wh.fills WHERE trader = {trader:String}) AS first_fill,
    (SELECT max(timestamp) FROM wh.fills WHERE trader = {trader:String}) AS last_fill,
    (SELECT max(timestamp) FROM wh.market_ticks
     WHERE (exchange, symbol) IN (SELECT DISTINCT exchange, symbol FROM wh.fills WHERE trader = {trader:String})) AS last_quote
