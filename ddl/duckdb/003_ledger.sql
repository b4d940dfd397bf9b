-- The trading ledger (see ddl/clickhouse/002_ledger.sql for the meaning of each column).
-- DuckDB dialect. No primary keys: a simulator run replaces a trader's rows in one transaction.

CREATE TABLE IF NOT EXISTS wh.traders
(
    trader        VARCHAR NOT NULL,
    strategy      VARCHAR NOT NULL,
    params        VARCHAR NOT NULL,
    initial_cash  DOUBLE NOT NULL,
    currency      VARCHAR NOT NULL,
    created_at    TIMESTAMP_NS NOT NULL
);

CREATE TABLE IF NOT EXISTS wh.orders
(
    order_id       VARCHAR NOT NULL,
    trader         VARCHAR NOT NULL,
    created_at     TIMESTAMP_NS NOT NULL,
    updated_at     TIMESTAMP_NS NOT NULL,
    symbol         VARCHAR NOT NULL,
    asset_class    VARCHAR NOT NULL,
    side           VARCHAR NOT NULL,
    order_type     VARCHAR NOT NULL,
    time_in_force  VARCHAR NOT NULL,
    post_only      BOOLEAN NOT NULL,
    qty            DOUBLE NOT NULL,
    limit_price    DOUBLE,
    filled_qty     DOUBLE NOT NULL,
    avg_price      DOUBLE,
    status         VARCHAR NOT NULL,
    reason         VARCHAR
);

CREATE TABLE IF NOT EXISTS wh.fills
(
    fill_id      VARCHAR NOT NULL,
    order_id     VARCHAR NOT NULL,
    trader       VARCHAR NOT NULL,
    timestamp    TIMESTAMP_NS NOT NULL,
    symbol       VARCHAR NOT NULL,
    asset_class  VARCHAR NOT NULL,
    side         VARCHAR NOT NULL,
    qty          DOUBLE NOT NULL,
    price        DOUBLE NOT NULL,
    fee          DOUBLE NOT NULL,
    slippage     DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS wh.portfolio_snapshots
(
    trader           VARCHAR NOT NULL,
    timestamp        TIMESTAMP_NS NOT NULL,
    cash             DOUBLE NOT NULL,
    positions_value  DOUBLE NOT NULL,
    gross_exposure   DOUBLE NOT NULL,
    nav              DOUBLE NOT NULL
);
