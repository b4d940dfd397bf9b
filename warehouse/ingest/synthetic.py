"""A synthetic multi-asset feed: deterministic for a seed, plausible, with optional faults.

165 instruments over the six asset classes. Event times arrive as a Poisson process over
`duration`; each tick goes to a random instrument whose market is open (sessions.py),
else to a crypto pair (24/7). Prices follow a per-instrument random walk in log space with
per-class volatility; quotes have per-class spreads rounded to the tick size, trades hit
the bid or the ask. Each (instrument, kind) has its own sequence numbers.

Faults, each at its own rate (a tick gets at most one of bad/duplicate/out-of-order):
  bad           one of non_finite, non_positive, crossed_book, unknown_asset_class,
                timestamp_window, spike — the column `_expected` names the rule
  duplicate     an exact copy (same seq, later receipt) right after the original
  out_of_order  event time moved behind the previous tick of the instrument by more than
                the tolerance (expected: rejected) — or by less (expected: stored)
  gap           the sequence number jumps (ticks lost upstream); one gap event each
`_expected` (rule) and `_gap` (seq numbers skipped before this tick) are ground truth
for tests: they are never stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl

from warehouse.records import Kind, SourceBatch, fmt_str
from warehouse.sanitize.rules import NS, SanitizeConfig
from warehouse.sessions import is_open


@dataclass(frozen=True)
class Instrument:
    symbol: str
    exchange: str
    asset_class: str
    price: float
    vol: float  # log-return sd per tick
    spread_bps: float
    tick: float
    lot: float
    size_scale: float


_CLASSES: dict[str, tuple[str, float, float, float, float, float]] = {
    #  class        exchange     vol    spread  tick    lot     size
    "crypto":      ("binance",   4e-4,  1.0,    0.01,   0.001,  0.5),
    "equities":    ("XNAS",      2e-4,  2.0,    0.01,   1.0,    200.0),
    "etfs":        ("ARCX",      1e-4,  1.0,    0.01,   1.0,    300.0),
    "forex":       ("EBS",       5e-5,  0.5,    1e-5,   1000.0, 1e6),
    "commodities": ("CME",       1.5e-4, 2.0,   0.01,   1.0,    5.0),
    "indices":     ("CBOE",      1e-4,  1.0,    0.01,   1.0,    1.0),
}  # fmt: skip

_NAMES: dict[str, list[tuple[str, float]]] = {
    "crypto": [("BTCUSDT", 42000), ("ETHUSDT", 2300), ("SOLUSDT", 100), ("BNBUSDT", 310),
               ("XRPUSDT", 0.6), ("ADAUSDT", 0.5), ("DOGEUSDT", 0.08), ("AVAXUSDT", 35),
               ("DOTUSDT", 7), ("LINKUSDT", 15), ("LTCUSDT", 70), ("MATICUSDT", 0.8)],
    "equities": [("AAPL", 185), ("MSFT", 375), ("NVDA", 480), ("AMZN", 150), ("GOOGL", 140),
                 ("META", 350), ("TSLA", 240), ("JPM", 170), ("V", 260), ("XOM", 100),
                 ("JNJ", 155), ("WMT", 160), ("PG", 150), ("MA", 420), ("HD", 345)],
    "etfs": [("SPY", 470), ("QQQ", 405), ("IWM", 200), ("DIA", 375), ("GLD", 190),
             ("TLT", 98), ("EEM", 40), ("XLF", 37), ("XLE", 85), ("VTI", 235)],
    "forex": [("EURUSD", 1.0950), ("GBPUSD", 1.2700), ("USDJPY", 141.50), ("AUDUSD", 0.6800),
              ("USDCAD", 1.3250), ("USDCHF", 0.8450), ("NZDUSD", 0.6300), ("EURGBP", 0.8620),
              ("EURJPY", 155.0), ("GBPJPY", 180.0)],
    "commodities": [("CL", 72), ("GC", 2060), ("SI", 24), ("HG", 3.9), ("NG", 2.6),
                    ("ZC", 470), ("ZW", 620), ("ZS", 1300)],
    "indices": [("SPX", 4750), ("NDX", 16800), ("DJI", 37700), ("RUT", 2020), ("VIX", 13),
                ("SOX", 4000)],
}  # fmt: skip

# share of the 165-instrument universe per class
_COUNTS = {"crypto": 40, "equities": 50, "etfs": 25, "forex": 20, "commodities": 15, "indices": 15}
MAX_INSTRUMENTS = sum(_COUNTS.values())


def universe(n: int = MAX_INSTRUMENTS, seed: int = 0) -> list[Instrument]:
    """The first `n` instruments, interleaved over the classes so any n ≥ 6 has all six."""
    rng = np.random.default_rng(seed + 7919)
    per_class: dict[str, list[Instrument]] = {}
    for cls, count in _COUNTS.items():
        exch, vol, spread, tick, lot, size = _CLASSES[cls]
        names = list(_NAMES[cls])
        items = []
        for i in range(count):
            if i < len(names):
                sym, px = names[i]
            else:
                sym = f"{cls[:3].upper()}{i:03d}"
                px = float(np.round(rng.uniform(10, 500), 2))
            # at least five significant digits of price resolution
            itick = min(tick, 10.0 ** (np.floor(np.log10(px)) - 4))
            items.append(Instrument(sym, exch, cls, float(px), vol, spread, float(itick), lot, size))
        per_class[cls] = items
    order: list[Instrument] = []
    for i in range(max(_COUNTS.values())):
        for cls in _COUNTS:
            if i < len(per_class[cls]):
                order.append(per_class[cls][i])
    if not 1 <= n <= len(order):
        raise ValueError(f"instruments must be between 1 and {len(order)}")
    return order[:n]


@dataclass
class FaultRates:
    bad: float = 0.0
    duplicate: float = 0.0
    out_of_order: float = 0.0
    gap: float = 0.0

    def any(self) -> bool:
        return any(v > 0 for v in (self.bad, self.duplicate, self.out_of_order, self.gap))


BAD_KINDS = ("non_finite", "non_positive", "crossed_book", "unknown_asset_class",
             "timestamp_window", "spike")  # fmt: skip


_EXPECTED = [None, *BAD_KINDS, "out_of_order", "duplicate"]


@dataclass
class SyntheticFeed:
    instruments: int = MAX_INSTRUMENTS
    ticks: int = 1_000_000
    seed: int = 1
    start: datetime = field(default_factory=lambda: datetime(2024, 1, 2, tzinfo=UTC))
    duration_s: float = 86_400.0
    trade_ratio: float = 0.2
    faults: FaultRates = field(default_factory=FaultRates)
    chunk: int = 250_000
    sanitize: SanitizeConfig = field(default_factory=SanitizeConfig)
    bad_kinds: tuple[str, ...] = BAD_KINDS  # which bad ticks to inject

    @property
    def source(self) -> str:
        return f"synthetic:seed={self.seed}"

    def batches(self) -> Iterator[SourceBatch]:
        """Quote and trade batches in arrival order, chunk by chunk (constant memory)."""
        instr = universe(self.instruments, self.seed)
        n_i = len(instr)
        rng = np.random.default_rng(self.seed)
        cls = np.array([i.asset_class for i in instr])
        vol = np.array([i.vol for i in instr])
        spread = np.array([i.spread_bps for i in instr]) * 1e-4
        tick = np.array([i.tick for i in instr])
        lot = np.array([i.lot for i in instr])
        size_scale = np.array([i.size_scale for i in instr])
        always = np.flatnonzero(cls == "crypto")
        if always.size == 0:
            always = np.arange(n_i)
        logp = np.log(np.array([i.price for i in instr]))
        seq = np.zeros((n_i, 2), dtype=np.int64)  # per (instrument, kind)
        eligible = np.zeros((n_i, 2), dtype=np.int64)  # ticks the sanitizer's max covers
        last_ts = np.full((n_i, 2), -1, dtype=np.int64)
        t0 = int(self.start.timestamp() * 1e9)
        mean_gap = self.duration_s * 1e9 / max(self.ticks, 1)
        now = t0
        done = 0
        tol = self.sanitize.out_of_order_tolerance
        while done < self.ticks:
            n = min(self.chunk, self.ticks - done)
            gaps = rng.exponential(mean_gap, n)
            ts = now + np.cumsum(gaps).astype(np.int64)
            now = int(ts[-1])
            idx = rng.integers(0, n_i, n)
            open_ = np.ones(n, dtype=bool)
            for c in np.unique(cls[idx]):
                m = cls[idx] == c
                open_[m] = is_open(str(c), ts[m])
            closed = ~open_
            idx[closed] = always[rng.integers(0, always.size, closed.sum())]
            kind = (rng.random(n) < self.trade_ratio).astype(np.int64)  # 0 quote, 1 trade
            # random walk per instrument (both kinds move the same mid)
            ret = rng.normal(0.0, 1.0, n) * vol[idx]
            order = np.argsort(idx, kind="stable")
            sidx = idx[order]
            cum = np.cumsum(ret[order])
            starts = np.r_[0, np.flatnonzero(np.diff(sidx)) + 1]
            base = np.repeat(cum[starts] - ret[order][starts], np.diff(np.r_[starts, n]))
            walk = np.empty(n)
            walk[order] = logp[sidx] + cum - base
            last_pos = np.r_[starts[1:] - 1, n - 1]
            logp[sidx[last_pos]] = (logp[sidx] + cum - base)[last_pos]
            mid = np.exp(walk)
            half = np.maximum(mid * spread[idx] / 2, tick[idx] / 2)
            dec = np.maximum(0, -np.floor(np.log10(tick[idx]))).astype(int)
            bid = np.floor((mid - half) / tick[idx]) * tick[idx]
            ask = np.ceil((mid + half) / tick[idx]) * tick[idx]
            ask = np.where(ask <= bid, bid + tick[idx], ask)
            bid = np.round(bid, 10)
            ask = np.round(ask, 10)
            for d in np.unique(dec):
                m = dec == d
                bid[m] = np.round(bid[m], d)
                ask[m] = np.round(ask[m], d)
            bid_size = np.maximum(np.round(rng.lognormal(0, 0.8, n) * size_scale[idx] / lot[idx]), 1) * lot[idx]
            ask_size = np.maximum(np.round(rng.lognormal(0, 0.8, n) * size_scale[idx] / lot[idx]), 1) * lot[idx]
            side_buy = rng.random(n) < 0.5
            # sequence numbers and previous event time per (instrument, kind)
            key = idx * 2 + kind
            korder = np.argsort(key, kind="stable")
            skey = key[korder]
            kstarts = np.r_[0, np.flatnonzero(np.diff(skey)) + 1]
            run = np.arange(n) - np.repeat(kstarts, np.diff(np.r_[kstarts, n]))
            prior = np.empty(n, dtype=np.int64)
            prior[korder] = seq.reshape(-1)[skey] + run  # ticks of this (instr, kind) before
            prev_ts = np.empty(n, dtype=np.int64)
            sts = ts[korder]
            shifted = np.r_[-1, sts[:-1]]
            shifted[kstarts] = last_ts.reshape(-1)[skey[kstarts]]
            prev_ts[korder] = shifted
            # faults
            f = self.faults
            u = rng.random(n)
            is_bad = u < f.bad
            is_dup = (u >= f.bad) & (u < f.bad + f.duplicate)
            is_ooo = (u >= f.bad + f.duplicate) & (u < f.bad + f.duplicate + f.out_of_order)
            jump = np.where((rng.random(n) < f.gap) & (prior > 0), rng.integers(1, 4, n), 0)
            # seq: cumulative jumps per (instrument, kind)
            jcum = np.empty(n, dtype=np.int64)
            sj = np.cumsum(jump[korder])
            jbase = np.repeat(sj[kstarts] - jump[korder][kstarts], np.diff(np.r_[kstarts, n]))
            jcum[korder] = sj - jbase
            seq_now = prior + 1 + jcum
            # state for the next chunk
            kl = np.r_[kstarts[1:] - 1, n - 1]
            flat_seq = seq.reshape(-1)
            flat_seq[skey[kl]] = seq_now[korder][kl]
            flat_last = last_ts.reshape(-1)
            flat_last[skey[kl]] = sts[kl]
            expected = np.zeros(n, dtype=np.int64)  # 0 clean, else index into _EXPECTED
            bad_asset = np.zeros(n, dtype=bool)
            ts_out = ts.copy()
            allowed = np.array([BAD_KINDS.index(k) for k in self.bad_kinds])
            bad_kind = allowed[rng.integers(0, allowed.size, n)]
            # spikes need a reference; crossed_book only exists for quotes
            bad_kind = np.where((bad_kind == 5) & (prior < self.sanitize.spike_window), 0, bad_kind)
            bad_kind = np.where((bad_kind == 2) & (kind == 1), 1, bad_kind)
            for b, name in enumerate(BAD_KINDS):
                m = is_bad & (bad_kind == b)
                if not m.any():
                    continue
                expected[m] = _EXPECTED.index(name)
                if name == "non_finite":
                    bid[m] = np.nan
                    ask[m] = np.nan
                elif name == "non_positive":
                    bid_size[m] = -bid_size[m]
                    ask_size[m] = -ask_size[m]
                elif name == "crossed_book":
                    bid[m], ask[m] = ask[m] + tick[idx][m], bid[m]
                elif name == "unknown_asset_class":
                    bad_asset |= m
                elif name == "timestamp_window":
                    ts_out[m] = np.where(rng.random(m.sum()) < 0.5, 631_152_000 * NS, 4_102_444_800 * NS)
                elif name == "spike":
                    factor = np.where(rng.random(m.sum()) < 0.5, 1.5, 0.6)
                    bid[m] *= factor
                    ask[m] *= factor
            # ticks that reach the out-of-order rule (clean, spikes, late ones) set its max
            elig = (~is_bad | (bad_kind == BAD_KINDS.index("spike"))).astype(np.int64)
            ecum = np.cumsum(elig[korder])
            ebefore = np.empty(n, dtype=np.int64)
            ebefore[korder] = (
                eligible.reshape(-1)[skey]
                + ecum
                - elig[korder]
                - np.repeat(ecum[kstarts] - elig[korder][kstarts], np.diff(np.r_[kstarts, n]))
            )
            flat_el = eligible.reshape(-1)
            flat_el[skey[kl]] = (ebefore[korder] + elig[korder])[kl]
            late = is_ooo & (ebefore > 0) & (prev_ts >= 0)
            far = late & (rng.random(n) < 0.5)
            near = late & ~far
            # stale: a day before the feed started, so behind every stored tick of the symbol
            ts_out[far] = t0 - 86_400 * NS - rng.integers(1, 60, far.sum()) * NS
            ts_out[near] = ts[near] - rng.integers(0, tol // 2, near.sum())
            expected[far] = _EXPECTED.index("out_of_order")
            recv = ts + np.maximum(rng.lognormal(11.5, 0.5, n), 50_000).astype(np.int64)
            recv = np.maximum(recv, ts_out)
            gi = pl.Series(idx)
            frame = (
                pl.DataFrame(
                    {
                        "_offset": np.arange(done, done + n, dtype=np.int64),
                        "_kind": kind,
                        "timestamp": ts_out,
                        "received_at": recv,
                        "exchange": pl.Series([i.exchange for i in instr]).gather(gi),
                        "symbol": pl.Series([i.symbol for i in instr]).gather(gi),
                        "asset_class": pl.Series([i.asset_class for i in instr]).gather(gi),
                        "bid": bid,
                        "ask": ask,
                        "bid_size": bid_size,
                        "ask_size": ask_size,
                        "seq": seq_now,
                        "_buy": side_buy,
                        "_expected": pl.Series(_EXPECTED, dtype=pl.String).gather(pl.Series(expected)),
                        "_dup": is_dup & (expected == 0),
                        "_gap": jump,
                        "_bad_asset": bad_asset,
                    },
                )
                .with_columns(
                    pl.when(pl.col("_bad_asset"))
                    .then(pl.lit("stocks"))
                    .otherwise(pl.col("asset_class"))
                    .alias("asset_class")
                )
                .drop("_bad_asset")
            )
            # duplicates: exact copy right after the original, received 1 ms later
            dups = frame.filter(pl.col("_dup")).with_columns(
                (pl.col("_offset") + self.ticks).alias("_offset"),
                (pl.col("received_at") + 1_000_000).alias("received_at"),
                pl.lit("duplicate").alias("_expected"),
                pl.lit(0, pl.Int64).alias("_gap"),
                pl.lit(1, pl.UInt32).alias("_pos"),
            )
            frame = (
                pl.concat([frame.with_columns(pl.lit(0, pl.UInt32).alias("_pos")), dups])
                .with_columns((pl.col("_offset") % self.ticks).alias("_orig"))
                .sort(["_orig", "_pos"])
                .drop(["_orig", "_pos", "_dup"])
            )
            done += n
            progress = done
            q = frame.filter(pl.col("_kind") == 0).drop(["_kind", "_buy"])
            t = frame.filter(pl.col("_kind") == 1).select(
                "_offset", "timestamp", "received_at", "exchange", "symbol", "asset_class",
                fmt_str("{}-{}", pl.col("symbol"), pl.col("seq")).alias("trade_id"),
                pl.when(pl.col("_buy")).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
                pl.when(pl.col("_buy")).then(pl.col("ask")).otherwise(pl.col("bid")).alias("price"),
                pl.when(pl.col("_buy")).then(pl.col("ask_size")).otherwise(pl.col("bid_size")).alias("size"),
                "seq", "_expected", "_gap",
            )  # fmt: skip
            empty = pl.DataFrame(schema={"_offset": pl.Int64, "rule": pl.String, "reason": pl.String,
                                         "_raw": pl.String, "exchange": pl.String, "symbol": pl.String,
                                         "timestamp": pl.Int64})  # fmt: skip
            yield SourceBatch(Kind.QUOTE, q, empty, progress)
            yield SourceBatch(Kind.TRADE, t, empty, progress)
