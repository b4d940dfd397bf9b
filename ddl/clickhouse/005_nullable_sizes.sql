-- Quote sizes are nullable: feeds without sizes (common for FX: timestamp, bid, ask) store
-- NULL rather than a made-up 0. A metadata change plus a mutation of existing parts.
ALTER TABLE wh.market_ticks
    MODIFY COLUMN bid_size Nullable(Float64),
    MODIFY COLUMN ask_size Nullable(Float64);
