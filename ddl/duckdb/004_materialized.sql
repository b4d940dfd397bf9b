-- Materialized analytics, refreshed per UTC day by `wh refresh`: DELETE the day and INSERT it
-- again in one transaction (re-running a day replaces it).

CREATE TABLE IF NOT EXISTS wh.bars_1m
(
    bar_start    TIMESTAMP_NS NOT NULL,
    exchange     VARCHAR NOT NULL,
    symbol       VARCHAR NOT NULL,
    asset_class  VARCHAR NOT NULL,
    open         DOUBLE NOT NULL,
    high         DOUBLE NOT NULL,
    low          DOUBLE NOT NULL,
    close        DOUBLE NOT NULL,
    volume       DOUBLE NOT NULL,
    vwap         DOUBLE NOT NULL,
    trades       UBIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS wh.leaderboard_daily
(
    day              DATE NOT NULL,
    rank             UBIGINT NOT NULL,
    trader           VARCHAR NOT NULL,
    nav              DOUBLE NOT NULL,
    cash             DOUBLE NOT NULL,
    positions_value  DOUBLE NOT NULL,
    pnl              DOUBLE NOT NULL,
    total_return     DOUBLE NOT NULL
);
