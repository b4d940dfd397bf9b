"""The sanitization rules, vectorized over a batch with polars (no Python loop per tick).

Rules run in this order; a tick is attributed to the first rule it fails:

    malformed            (decoder) a value does not parse or a required one is missing
    non_finite           NaN / ±Infinity in a price or size (1e400 parses to Infinity)
    non_positive         price or size ≤ 0
    unknown_asset_class  not one of crypto, equities, etfs, forex, commodities, indices
    timestamp_window     event time before `min_ts` or later than now + `max_future`
    crossed_book         quotes: bid > ask (a locked book, bid == ask, is allowed)
    duplicate            same dedup key as an earlier tick of the stream (records.py)
    out_of_order         event time more than `out_of_order_tolerance` behind the newest
                         tick of the same (exchange, symbol); within it, the tick is kept
                         and lands in place (storage is ordered by event time)
    spike                price (quotes: mid) deviates from the rolling median of the
                         previous `spike_window` prices of the symbol by more than
                         `spike_band` (relative); needs `spike_min_samples` prior prices

Each rule's policy is `reject` (row goes to wh.rejects with rule, reason and its raw
payload) or `raise` (SanitizeError; nothing of the batch is written).

Sequence gaps are not rejects: per (exchange, symbol), when `seq` jumps by more than one,
a gap event (from_seq, to_seq, missing) is produced. Every parsed tick counts as
arrived, rejected or not; duplicates and late ticks (seq at or below the last seen) do
not open gaps.

State carried between batches is bounded: the newest `spike_window` prices, the newest
event time, the last seq, and the dedup keys within `out_of_order_tolerance` of the
newest tick, per (exchange, symbol).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl

from warehouse.errors import SanitizeError
from warehouse.records import ASSET_CLASSES, TABLE_FOR_KIND, Kind, dedup_key_exprs

RULES: tuple[str, ...] = (
    "malformed",
    "non_finite",
    "non_positive",
    "unknown_asset_class",
    "timestamp_window",
    "crossed_book",
    "duplicate",
    "out_of_order",
    "spike",
)

GROUP = ["exchange", "symbol"]
NS = 1_000_000_000


class Policy(StrEnum):
    REJECT = "reject"
    RAISE = "raise"


@dataclass
class SanitizeConfig:
    min_ts: int = 946_684_800 * NS  # 2000-01-01T00:00:00Z
    max_future: int = 86_400 * NS  # one day past the wall clock
    out_of_order_tolerance: int = 5 * NS
    spike_band: float = 0.10
    spike_window: int = 21
    spike_min_samples: int = 5
    policies: dict[str, Policy] = field(default_factory=dict)

    def policy(self, rule: str) -> Policy:
        return self.policies.get(rule, Policy.REJECT)


@dataclass
class SanitizeResult:
    accepted: pl.DataFrame  # internal layout, _offset/_raw dropped
    rejects: pl.DataFrame  # _offset, rule, reason, _raw, exchange, symbol, timestamp
    gaps: pl.DataFrame  # exchange, symbol, from_seq, to_seq, missing, timestamp, _offset


_GAP_SCHEMA = {
    "exchange": pl.String,
    "symbol": pl.String,
    "from_seq": pl.Int64,
    "to_seq": pl.Int64,
    "missing": pl.Int64,
    "timestamp": pl.Int64,
}


class Sanitizer:
    """Stateful across the batches of one stream (a file, a feed, a topic partition set)."""

    def __init__(self, kind: Kind, config: SanitizeConfig | None = None) -> None:
        self.kind = kind
        self.config = config or SanitizeConfig()
        self.table = TABLE_FOR_KIND[kind]
        self._max_ts = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "_max": pl.Int64})
        self._prices = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "_px": pl.Float64})
        self._last_seq = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "_last": pl.Int64})
        self._keys: pl.DataFrame | None = None  # key columns + timestamp of recent ticks

    # -- the rules -------------------------------------------------------------------
    def _numeric(self) -> list[str]:
        if self.kind == Kind.QUOTE:
            return ["bid", "ask", "bid_size", "ask_size"]
        return ["price", "size"]

    def _price(self) -> pl.Expr:
        if self.kind == Kind.QUOTE:
            return (pl.col("bid") + pl.col("ask")) / 2
        return pl.col("price")

    def process(self, rows: pl.DataFrame) -> SanitizeResult:
        c = self.config
        n = rows.height
        df = rows.with_row_index("_i")
        nums = self._numeric()
        max_ts = time.time_ns() + c.max_future
        values = pl.format(", ".join(f"{x}={{}}" for x in nums), *[pl.col(x) for x in nums])
        first = (
            pl.when(pl.any_horizontal([~pl.col(x).is_finite() for x in nums]))
            .then(pl.struct(rule=pl.lit("non_finite"), reason=pl.format("non-finite value: {}", values)))
            .when(pl.any_horizontal([pl.col(x) <= 0 for x in nums]))
            .then(pl.struct(rule=pl.lit("non_positive"), reason=pl.format("price or size <= 0: {}", values)))
            .when(~pl.col("asset_class").is_in(ASSET_CLASSES))
            .then(pl.struct(rule=pl.lit("unknown_asset_class"),
                            reason=pl.format("unknown asset class '{}'", pl.col("asset_class"))))
            .when((pl.col("timestamp") < c.min_ts) | (pl.col("timestamp") > max_ts))
            .then(pl.struct(rule=pl.lit("timestamp_window"),
                            reason=pl.format("event time {} ns outside [{}, now + {} s]",
                                             pl.col("timestamp"), pl.lit(c.min_ts), pl.lit(c.max_future // NS))))
        )  # fmt: skip
        if self.kind == Kind.QUOTE:
            first = first.when(pl.col("bid") > pl.col("ask")).then(
                pl.struct(rule=pl.lit("crossed_book"),
                          reason=pl.format("crossed book: bid {} > ask {}", pl.col("bid"), pl.col("ask")))
            )  # fmt: skip
        df = df.with_columns(first.otherwise(None).alias("_v"))
        df = df.with_columns(pl.col("_v").struct.field("rule").alias("_rule"),
                             pl.col("_v").struct.field("reason").alias("_reason")).drop("_v")  # fmt: skip

        df = self._duplicates(df)
        df = self._out_of_order(df)
        df = self._spikes(df)
        gaps = self._gaps(rows)

        rejected = df.filter(pl.col("_rule").is_not_null())
        for rule in rejected.get_column("_rule").unique(maintain_order=True).to_list():
            if self.config.policy(rule) == Policy.RAISE:
                hit = rejected.filter(pl.col("_rule") == rule)
                raise SanitizeError(rule, hit.height, f"{hit['_reason'][0]} — {hit['_raw'][0]}")
        fields = [c for c in rows.columns if not c.startswith("_")]
        accepted = df.filter(pl.col("_rule").is_null()).select(fields)
        if "_raw" not in rejected.columns:  # typed sources: the raw payload is the record as JSON
            rejected = rejected.with_columns(pl.struct(fields).struct.json_encode().alias("_raw"))
        rejects = rejected.select(
            "_offset",
            pl.col("_rule").alias("rule"),
            pl.col("_reason").alias("reason"),
            "_raw",
            "exchange",
            "symbol",
            "timestamp",
        )
        assert accepted.height + rejects.height == n
        return SanitizeResult(accepted, rejects, gaps)

    def _duplicates(self, df: pl.DataFrame) -> pl.DataFrame:
        keys = dedup_key_exprs(self.table)
        ok = df.filter(pl.col("_rule").is_null()).select(pl.col("_i"), pl.col("timestamp").alias("_ts"), *keys)
        key_names = [k for k in ok.columns if k not in ("_i", "_ts")]
        state = self._keys
        if state is not None and state.height:
            both = pl.concat([state.with_columns(pl.lit(None, pl.UInt32).alias("_i")).select(ok.columns), ok])
        else:
            both = ok
        both = both.with_columns(pl.struct(key_names).is_first_distinct().alias("_first"))
        dup_idx = both.filter(~pl.col("_first") & pl.col("_i").is_not_null()).get_column("_i")
        # keep recent keys only (bounded state); the out-of-order rule rejects older ones anyway
        recent = both.filter(pl.col("_first")).select(["_ts", *key_names])
        newest = recent.group_by(GROUP).agg(pl.col("_ts").max().alias("_newest"))
        self._keys = (
            recent.join(newest, on=GROUP)
            .filter(pl.col("_ts") >= pl.col("_newest") - self.config.out_of_order_tolerance)
            .drop("_newest")
        )
        return df.with_columns(
            pl.when(pl.col("_i").is_in(dup_idx.implode()) & pl.col("_rule").is_null())
            .then(pl.lit("duplicate"))
            .otherwise(pl.col("_rule"))
            .alias("_rule"),
            pl.when(pl.col("_i").is_in(dup_idx.implode()) & pl.col("_rule").is_null())
            .then(pl.lit("duplicate of an earlier tick with the same dedup key"))
            .otherwise(pl.col("_reason"))
            .alias("_reason"),
        )

    def _out_of_order(self, df: pl.DataFrame) -> pl.DataFrame:
        tol = self.config.out_of_order_tolerance
        ok = df.filter(pl.col("_rule").is_null()).select("_i", *GROUP, pl.col("timestamp").alias("_t"))
        state = self._max_ts.select(pl.lit(None, pl.UInt32).alias("_i"), *GROUP, pl.col("_max").alias("_t"))
        both = pl.concat([state, ok])
        both = both.with_columns(pl.col("_t").cum_max().shift(1).over(GROUP).alias("_prev"))
        late = both.filter(pl.col("_i").is_not_null() & (pl.col("_t") < pl.col("_prev") - tol))
        self._max_ts = both.group_by(GROUP).agg(pl.col("_t").max().alias("_max"))
        late = late.select("_i", (pl.col("_prev") - pl.col("_t")).alias("_behind"))
        df = df.join(late, on="_i", how="left")
        return df.with_columns(
            pl.when(pl.col("_behind").is_not_null())
            .then(pl.lit("out_of_order"))
            .otherwise(pl.col("_rule"))
            .alias("_rule"),
            pl.when(pl.col("_behind").is_not_null())
            .then(pl.format("event time {} ns behind the newest tick of the symbol (tolerance {} ns)",
                            pl.col("_behind"), pl.lit(tol)))
            .otherwise(pl.col("_reason"))
            .alias("_reason"),
        ).drop("_behind")  # fmt: skip

    def _spikes(self, df: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        ok = df.filter(pl.col("_rule").is_null()).select("_i", *GROUP, self._price().alias("_px"))
        state = self._prices.select(pl.lit(None, pl.UInt32).alias("_i"), *GROUP, "_px")
        both = pl.concat([state, ok])
        both = both.with_columns(
            pl.col("_px")
            .shift(1)
            .rolling_median(window_size=c.spike_window, min_samples=c.spike_min_samples)
            .over(GROUP)
            .alias("_ref")
        )
        dev = (pl.col("_px") / pl.col("_ref") - 1).abs()
        spikes = both.filter(pl.col("_i").is_not_null() & (dev > c.spike_band)).select(
            "_i", "_px", "_ref", (dev * 100).round(2).alias("_dev")
        )
        self._prices = both.select(*GROUP, "_px").group_by(GROUP, maintain_order=True).tail(c.spike_window)
        df = df.join(spikes, on="_i", how="left")
        return df.with_columns(
            pl.when(pl.col("_dev").is_not_null()).then(pl.lit("spike")).otherwise(pl.col("_rule")).alias("_rule"),
            pl.when(pl.col("_dev").is_not_null())
            .then(pl.format("price {} deviates {}% from the rolling median {} (band {}%)",
                            pl.col("_px"), pl.col("_dev"), pl.col("_ref"), pl.lit(c.spike_band * 100)))
            .otherwise(pl.col("_reason"))
            .alias("_reason"),
        ).drop(["_px", "_ref", "_dev"])  # fmt: skip

    def _gaps(self, rows: pl.DataFrame) -> pl.DataFrame:
        seqd = rows.filter(pl.col("seq").is_not_null())
        if seqd.height == 0:
            return pl.DataFrame(schema=_GAP_SCHEMA)
        cur = seqd.select(*GROUP, "seq", "timestamp")
        state = self._last_seq.select(*GROUP, pl.col("_last").alias("seq"), pl.lit(None, pl.Int64).alias("timestamp"))
        floor = self._last_seq.rename({"_last": "_floor"})
        cur = cur.join(floor, on=GROUP, how="left", maintain_order="left").filter(
            pl.col("_floor").is_null() | (pl.col("seq") > pl.col("_floor"))
        ).drop("_floor")  # late ticks (at or below the last seen seq) open no gap
        both = pl.concat([state, cur])
        # arrival order is usually seq order; sort only when a batch reorders some symbol
        step = pl.col("seq") - pl.col("seq").shift(1).over(GROUP)
        if both.select((step < 0).any()).item():
            both = both.sort([*GROUP, "seq"], maintain_order=True)
        both = both.with_columns(pl.col("seq").shift(1).over(GROUP).alias("_prev"))
        gaps = both.filter(pl.col("_prev").is_not_null() & (pl.col("seq") - pl.col("_prev") > 1)).select(
            *GROUP,
            (pl.col("_prev") + 1).alias("from_seq"),
            (pl.col("seq") - 1).alias("to_seq"),
            (pl.col("seq") - pl.col("_prev") - 1).alias("missing"),
            "timestamp",
        )
        self._last_seq = both.group_by(GROUP).agg(pl.col("seq").max().alias("_last"))
        return gaps
