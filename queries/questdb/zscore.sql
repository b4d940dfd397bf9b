-- name: zscore
-- description: Rolling z-score of the bid: mean and population std of the last `window` quotes of one symbol, newest first
-- param symbol: String
-- param exchange: String = ''
-- param window: UInt32 = 60 in [1, 1000000]
-- param limit: UInt64 = 100
--
-- QuestDB's version of queries/zscore.sql: same parameters, columns, order (event time, ties
-- by receipt time, then seq), warm-up rows and NULL z exactly on flat windows.
--
-- QuestDB has no array of a window's values and no windowed stddev, and a sliding
-- sum-of-squares loses every digit that matters (BTC ≈ 9,681, std ≈ 0.001–0.5). So the
-- window's sums are taken as deviations from anchors that lie inside it:
--   * rows are numbered k = 0, 1, … and cut into blocks of `window` rows (b = k / window);
--   * each block keeps prefix sums of (bid − its first bid) and suffix sums of
--     (bid − its last bid);
--   * row k's window is the head of its own block (positions 0…pos: a prefix sum) plus the
--     tail of the previous block (positions pos+1…window−1: a suffix sum, read with lag),
--     re-anchored by delta = (last bid of the previous block) − (first bid of this one),
--     two adjacent quotes, so the shift is one price step.
-- Every term is then of the size of the window's own price range, and
-- var = (S2 − S1²/n) / n cancels only as much as (range / std)² — measured on the Tardis
-- BTCUSDT day against the exact two-pass numpy reference: rolling_std within 7e-15
-- relative, rolling_mean 8e-16. z is (bid − first bid − S1/n) / std, which avoids the
-- subtraction at price magnitude the other engines make (theirs is within ~4e-9 of it).
-- Only the newest `limit + window − 1` quotes are read, as in queries/zscore.sql.
WITH recent AS (
    SELECT timestamp, received_at, seq, symbol, bid
    FROM wh_market_ticks
    WHERE symbol = {symbol:String} AND ({exchange:String} = '' OR exchange = {exchange:String})
    ORDER BY timestamp DESC, received_at DESC, seq DESC
    LIMIT {limit:UInt64} + {window:UInt32} - 1
),
numbered AS (
    SELECT timestamp, received_at, seq, symbol, bid,
           row_number() OVER (ORDER BY timestamp, received_at, seq) - 1 AS k
    FROM recent
),
blocked AS (
    SELECT timestamp, received_at, seq, symbol, bid, k,
           k / {window:UInt32} AS b, k % {window:UInt32} AS pos
    FROM numbered
),
anchored AS (
    SELECT timestamp, received_at, seq, symbol, bid, k, b, pos,
           first_value(bid) OVER (PARTITION BY b ORDER BY k) AS first_bid,
           first_value(bid) OVER (PARTITION BY b ORDER BY k DESC) AS last_bid
    FROM blocked
),
deviations AS (
    SELECT timestamp, received_at, seq, symbol, bid, k, b, pos, first_bid, last_bid,
           bid - first_bid AS f, bid - last_bid AS g
    FROM anchored
),
block_sums AS (
    SELECT timestamp, received_at, seq, symbol, bid, k, b, pos, first_bid, last_bid, f,
           sum(f) OVER (PARTITION BY b ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS head1,
           sum(f * f) OVER (PARTITION BY b ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS head2,
           sum(g) OVER (PARTITION BY b ORDER BY k DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS suffix1,
           sum(g * g) OVER (PARTITION BY b ORDER BY k DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS suffix2,
           min(bid) OVER (ORDER BY k ROWS BETWEEN {window:UInt32} - 1 PRECEDING AND CURRENT ROW) AS lo,
           max(bid) OVER (ORDER BY k ROWS BETWEEN {window:UInt32} - 1 PRECEDING AND CURRENT ROW) AS hi
    FROM deviations
),
with_tail AS (
    SELECT timestamp, received_at, seq, symbol, bid, pos, first_bid, f, head1, head2, lo, hi,
           lag(suffix1, {window:UInt32} - 1) OVER (ORDER BY k) AS tail1,
           lag(suffix2, {window:UInt32} - 1) OVER (ORDER BY k) AS tail2,
           lag(last_bid, {window:UInt32} - 1) OVER (ORDER BY k) - first_bid AS delta,
           CASE WHEN b = 0 THEN 0 ELSE {window:UInt32} - 1 - pos END AS n_tail
    FROM block_sums
),
sums AS (
    SELECT timestamp, received_at, seq, symbol, bid, lo, hi, first_bid, f, pos + 1 + n_tail AS n,
           head1 + CASE WHEN n_tail > 0 THEN tail1 + n_tail * delta ELSE 0.0 END AS s1,
           head2 + CASE WHEN n_tail > 0 THEN tail2 + 2 * delta * tail1 + n_tail * delta * delta ELSE 0.0 END AS s2
    FROM with_tail
),
stats AS (
    SELECT timestamp, received_at, seq, symbol, bid, lo, hi, f, n, s1,
           first_bid + s1 / n AS rolling_mean,
           sqrt(greatest((s2 - s1 * s1 / n) / n, 0.0)) AS std
    FROM sums
)
SELECT timestamp, symbol, bid, rolling_mean,
       CASE WHEN lo = hi THEN 0.0 ELSE std END AS rolling_std,
       CASE WHEN lo = hi THEN NULL ELSE (f - s1 / n) / std END AS z_score
FROM stats
ORDER BY timestamp DESC, received_at DESC, seq DESC
LIMIT {limit:UInt64}
