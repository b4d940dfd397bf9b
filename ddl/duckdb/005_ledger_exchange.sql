-- An instrument is (exchange, symbol): orders and fills name their venue, and the
-- portfolio queries mark positions with that venue's quotes only (BTCUSDT on
-- binance-futures is not BTCUSDT on binance). Rows written before this migration get ''
-- and are marked at their last fill price.
ALTER TABLE wh.orders ADD COLUMN exchange VARCHAR DEFAULT '';
ALTER TABLE wh.fills ADD COLUMN exchange VARCHAR DEFAULT '';
