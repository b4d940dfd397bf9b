-- Quote sizes are nullable: feeds without sizes (common for FX: timestamp, bid, ask) store
-- NULL rather than a made-up 0.
ALTER TABLE wh.market_ticks ALTER COLUMN bid_size DROP NOT NULL;
ALTER TABLE wh.market_ticks ALTER COLUMN ask_size DROP NOT NULL;
