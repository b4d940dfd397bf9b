"""The stateful rules as polars expressions — how wh computed them before the compiled pass
(warehouse/sanitize/kernel.py); the oracle tests/unit/test_sanitize.py compares it with.

`ReferenceSanitizer` keeps its own state as frames and runs the stateless rules of the real
`Sanitizer` (it overrides only `_stateful`), so the two differ in nothing but the pass.
"""

from __future__ import annotations

import polars as pl

from warehouse.records import dedup_key_exprs, fmt_str
from warehouse.sanitize.rules import _GAP_SCHEMA, G, Sanitizer


class ReferenceSanitizer(Sanitizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ref_keys: pl.DataFrame | None = None
        self._ref_max = pl.DataFrame(schema={"_g": pl.UInt32, "_max": pl.Int64})
        self._ref_prices = pl.DataFrame(schema={"_g": pl.UInt32, "_px": pl.Float64})
        self._ref_last = pl.DataFrame(schema={"_g": pl.UInt32, "_last": pl.Int64})

    def _stateful(self, df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        df = self._duplicates(df)
        df = self._out_of_order(df)
        df = self._spikes(df)
        return df, self._gaps(df)

    def _mark(self, df: pl.DataFrame, hits: pl.DataFrame, rule: str, reason: pl.Expr) -> pl.DataFrame:
        if hits.height == 0:
            return df
        hits = hits.select("_i", pl.lit(rule).alias("_r2"), reason.alias("_why2"))
        return (
            df.join(hits, on="_i", how="left", maintain_order="left")
            .with_columns(pl.coalesce("_rule", "_r2").alias("_rule"), pl.coalesce("_reason", "_why2").alias("_reason"))
            .drop(["_r2", "_why2"])
        )

    def _duplicates(self, df: pl.DataFrame) -> pl.DataFrame:
        keys = [pl.col("_g"), *dedup_key_exprs(self.table)[2:]]
        ok = df.filter(pl.col("_rule").is_null()).select(pl.col("_i"), pl.col("timestamp").alias("_ts"), *keys)
        key_names = [k for k in ok.columns if k not in ("_i", "_ts")]
        state = self._ref_keys
        both = pl.concat([state.select(ok.columns), ok]) if state is not None and state.height else ok
        both = both.with_columns(pl.struct(key_names).is_first_distinct().alias("_first"))
        dups = both.filter(~pl.col("_first") & pl.col("_i").is_not_null()).select("_i")
        recent = both.filter(pl.col("_first")).select(["_ts", *key_names])
        newest = recent.group_by(G).agg(pl.col("_ts").max().alias("_newest"))
        self._ref_keys = (
            recent.join(newest, on=G)
            .filter(pl.col("_ts") >= pl.col("_newest") - self.config.out_of_order_tolerance)
            .select(pl.lit(None, pl.UInt32).alias("_i"), "_ts", *key_names)
        )
        return self._mark(df, dups, "duplicate", pl.lit("duplicate of an earlier tick with the same dedup key"))

    def _out_of_order(self, df: pl.DataFrame) -> pl.DataFrame:
        tol = self.config.out_of_order_tolerance
        ok = df.filter(pl.col("_rule").is_null()).select("_i", "_g", pl.col("timestamp").alias("_t"))
        state = self._ref_max.select(pl.lit(None, pl.UInt32).alias("_i"), "_g", pl.col("_max").alias("_t"))
        both = pl.concat([state, ok])
        both = both.with_columns(pl.col("_t").cum_max().shift(1).over(G).alias("_prev"))
        late = both.filter(pl.col("_i").is_not_null() & (pl.col("_t") < pl.col("_prev") - tol))
        self._ref_max = both.group_by(G).agg(pl.col("_t").max().alias("_max"))
        return self._mark(df, late, "out_of_order",
                          fmt_str("event time {} ns behind the newest tick of the symbol (tolerance {} ns)",
                                  pl.col("_prev") - pl.col("_t"), pl.lit(tol)))  # fmt: skip

    def _spikes(self, df: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        ok = df.filter(pl.col("_rule").is_null()).select("_i", "_g", self._price().alias("_px"))
        state = self._ref_prices.select(pl.lit(None, pl.UInt32).alias("_i"), "_g", "_px")
        both = pl.concat([state, ok])
        both = both.with_columns(
            pl.col("_px").shift(1).rolling_median(c.spike_window, min_samples=c.spike_min_samples).over(G).alias("_ref")
        )
        dev = (pl.col("_px") / pl.col("_ref") - 1).abs()
        spikes = both.filter(pl.col("_i").is_not_null() & (dev > c.spike_band))
        self._ref_prices = both.select("_g", "_px").group_by(G, maintain_order=True).tail(c.spike_window)
        return self._mark(df, spikes, "spike",
                          fmt_str("price {} deviates {}% from the rolling median {} (band {}%)",
                                  pl.col("_px"), (dev * 100).round(2), pl.col("_ref"), pl.lit(c.spike_band * 100)))  # fmt: skip

    def _gaps(self, df: pl.DataFrame) -> pl.DataFrame:
        seqd = df.filter(pl.col("seq").is_not_null())
        if seqd.height == 0:
            return pl.DataFrame(schema=_GAP_SCHEMA)
        cur = seqd.select("_g", "seq", "timestamp")
        state = self._ref_last.select("_g", pl.col("_last").alias("seq"), pl.lit(None, pl.Int64).alias("timestamp"))
        floor = self._ref_last.rename({"_last": "_floor"})
        cur = (
            cur.join(floor, on=G, how="left", maintain_order="left")
            .filter(pl.col("_floor").is_null() | (pl.col("seq") > pl.col("_floor")))
            .drop("_floor")
        )
        both = pl.concat([state, cur])
        step = pl.col("seq") - pl.col("seq").shift(1).over(G)
        if both.select((step < 0).any()).item():
            both = both.sort(["_g", "seq"], maintain_order=True)
        both = both.with_columns(pl.col("seq").shift(1).over(G).alias("_prev"))
        gaps = both.filter(pl.col("_prev").is_not_null() & (pl.col("seq") - pl.col("_prev") > 1)).select(
            "_g",
            (pl.col("_prev") + 1).alias("from_seq"),
            (pl.col("seq") - 1).alias("to_seq"),
            (pl.col("seq") - pl.col("_prev") - 1).alias("missing"),
            "timestamp",
        )
        self._ref_last = both.group_by(G).agg(pl.col("seq").max().alias("_last"))
        return gaps.join(self._gid, on=G, how="left", maintain_order="left").select(list(_GAP_SCHEMA))
