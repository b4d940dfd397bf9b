"""The sanitization rules over a batch: the stateless ones as polars expressions, the stateful
ones (duplicate, out_of_order, spike, gaps) in one compiled pass (sanitize/kernel.py). The
accepted rows come out in storage order (records.STORAGE_ORDER), which the sinks then only check.

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
newest tick, per (exchange, symbol). `snapshot()`/`restore()` carry it across a restart
(the Kafka consumer stores it with its offsets), so a crash changes no verdict: the
verdicts do not depend on where batches — or restarts — fall.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import polars as pl

from warehouse.errors import SanitizeError
from warehouse.records import (
    ASSET_CLASSES,
    STORAGE_ORDER,
    TABLE_FOR_KIND,
    Kind,
    dedup_key_exprs,
    fmt_str,
    storage_order,
)

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
G = ["_g"]  # (exchange, symbol) as a small integer, assigned per stream
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
    """Stateful across the batches of one stream (a file, a feed, a topic partition set).

    (exchange, symbol) pairs get a small integer id `_g` on first sight; the stateful rules
    run in one compiled pass (sanitize/kernel.py) with each pair's state — newest event
    time, last seq, newest `spike_window` prices — in arrays indexed by that id, and the
    recent dedup keys in a frame.
    """

    def __init__(self, kind: Kind, config: SanitizeConfig | None = None) -> None:
        self.kind = kind
        self.config = config or SanitizeConfig()
        self.table = TABLE_FOR_KIND[kind]
        self._gid = pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String, "_g": pl.UInt32})
        self._max = np.zeros(0, np.int64)  # per group: the newest event time (ns) …
        self._has_max = np.zeros(0, np.bool_)  # … if one was seen
        self._last = np.zeros(0, np.int64)  # the highest seq
        self._has_last = np.zeros(0, np.bool_)
        self._ring = np.zeros((0, self.config.spike_window))  # the newest prices, oldest first
        self._ring_n = np.zeros(0, np.int64)
        self._keys: pl.DataFrame | None = None  # dedup keys + timestamp of recent ticks

    # -- state: the frames a snapshot holds (the format every earlier version stored) ------
    _STATE = ("_gid", "_max_ts", "_prices", "_last_seq", "_keys")

    def _frames(self) -> dict[str, pl.DataFrame | None]:
        groups = np.arange(len(self._max), dtype=np.uint32)
        counts = self._ring_n
        held = np.arange(self._ring.shape[1]) < counts[:, None]  # each ring's prices, oldest first
        return {
            "_gid": self._gid,
            "_max_ts": pl.DataFrame({"_g": groups[self._has_max], "_max": self._max[self._has_max]}),
            "_prices": pl.DataFrame({"_g": np.repeat(groups, counts), "_px": self._ring[held]}),
            "_last_seq": pl.DataFrame({"_g": groups[self._has_last], "_last": self._last[self._has_last]}),
            "_keys": self._keys,
        }

    def snapshot(self) -> dict[str, bytes]:
        """The state as Arrow IPC bytes per component (safe to store and to load: no pickle)."""
        out: dict[str, bytes] = {}
        for name, df in self._frames().items():
            if df is not None:
                buf = io.BytesIO()
                df.write_ipc(buf, compression="zstd")
                out[name] = buf.getvalue()
        return out

    def restore(self, state: dict[str, bytes]) -> None:
        """Resume from a `snapshot()`: the same verdicts as if the stream had never stopped."""
        frames = {name: pl.read_ipc(io.BytesIO(state[name])) for name in self._STATE if state.get(name) is not None}
        # exactly the snapshot's state: what it lacks was not seen (a batch undone after a failed
        # write must leave no dedup key behind, or its retry would be rejected as duplicates)
        self._gid = frames.get("_gid", pl.DataFrame(schema={"exchange": pl.String, "symbol": pl.String,
                                                            "_g": pl.UInt32}))  # fmt: skip
        self._keys = frames.get("_keys")
        self._grow(self._gid.height, reset=True)
        if "_max_ts" in frames:
            g = frames["_max_ts"]["_g"].to_numpy().astype(np.int64)
            self._max[g], self._has_max[g] = frames["_max_ts"]["_max"].to_numpy(), True
        if "_last_seq" in frames:
            g = frames["_last_seq"]["_g"].to_numpy().astype(np.int64)
            self._last[g], self._has_last[g] = frames["_last_seq"]["_last"].to_numpy(), True
        if "_prices" in frames:
            w = self.config.spike_window
            prices = frames["_prices"].group_by("_g", maintain_order=True).tail(w)
            g = prices["_g"].to_numpy().astype(np.int64)
            pos = prices.select(pl.int_range(pl.len()).over("_g").alias("_p"))["_p"].to_numpy()
            self._ring[g, pos] = prices["_px"].to_numpy()
            np.add.at(self._ring_n, g, 1)

    def _grow(self, groups: int, *, reset: bool = False) -> None:
        """Per-group arrays for `groups` groups (new ones without state)."""
        have = 0 if reset else len(self._max)
        if groups == have and not reset:
            return
        more = groups - have

        def grown(a: np.ndarray, fill: float | bool = 0) -> np.ndarray:
            extra = np.full((more, *a.shape[1:]), fill, dtype=a.dtype)
            return np.concatenate([a[:have], extra])

        self._max, self._has_max = grown(self._max), grown(self._has_max, False)
        self._last, self._has_last = grown(self._last), grown(self._has_last, False)
        self._ring, self._ring_n = grown(self._ring), grown(self._ring_n)

    def _numeric(self) -> list[str]:
        if self.kind == Kind.QUOTE:
            return ["bid", "ask", "bid_size", "ask_size"]
        return ["price", "size"]

    def _price(self) -> pl.Expr:
        if self.kind == Kind.QUOTE:
            return (pl.col("bid") + pl.col("ask")) / 2
        return pl.col("price")

    def _with_group_ids(self, rows: pl.DataFrame) -> pl.DataFrame:
        pairs = rows.select(GROUP).unique(maintain_order=True)
        new = pairs.join(self._gid, on=GROUP, how="anti", nulls_equal=True)
        if new.height:
            start = self._gid.height
            new = new.with_columns(pl.int_range(start, start + new.height, dtype=pl.UInt32).alias("_g"))
            self._gid = pl.concat([self._gid, new])
        self._grow(self._gid.height)
        return rows.join(self._gid, on=GROUP, how="left", nulls_equal=True, maintain_order="left")

    # -- the rules -------------------------------------------------------------------
    def process(self, rows: pl.DataFrame) -> SanitizeResult:
        c = self.config
        n = rows.height
        fields = [col for col in rows.columns if not col.startswith("_")]
        df = self._with_group_ids(rows).with_row_index("_i")
        nums = self._numeric()
        max_ts = time.time_ns() + c.max_future
        values = fmt_str(
            ", ".join(f"{x}={{}}" for x in nums), *[pl.col(x).cast(pl.String).fill_null("null") for x in nums]
        )
        first = (
            pl.when(pl.any_horizontal([~pl.col(x).is_finite() for x in nums]))
            .then(pl.lit("non_finite"))
            .when(pl.any_horizontal([pl.col(x) <= 0 for x in nums]))
            .then(pl.lit("non_positive"))
            .when(~pl.col("asset_class").is_in(ASSET_CLASSES))
            .then(pl.lit("unknown_asset_class"))
            .when((pl.col("timestamp") < c.min_ts) | (pl.col("timestamp") > max_ts))
            .then(pl.lit("timestamp_window"))
        )
        if self.kind == Kind.QUOTE:
            first = first.when(pl.col("bid") > pl.col("ask")).then(pl.lit("crossed_book"))
        df = df.with_columns(first.otherwise(None).alias("_rule"))
        # reason texts only for the few rows that failed (formatting every row is costly)
        reasons = {
            "non_finite": fmt_str("non-finite value: {}", values),
            "non_positive": fmt_str("price or size <= 0: {}", values),
            "unknown_asset_class": fmt_str("unknown asset class '{}'", pl.col("asset_class")),
            "timestamp_window": fmt_str("event time {} ns outside [{}, now + {} s]",
                                          pl.col("timestamp"), pl.lit(c.min_ts), pl.lit(c.max_future // NS)),
            "crossed_book": fmt_str("crossed book: bid {} > ask {}", pl.col("bid"), pl.col("ask")) if self.kind == Kind.QUOTE else pl.lit(""),
        }  # fmt: skip
        failed = df.filter(pl.col("_rule").is_not_null())
        expr = pl.lit(None, pl.String)
        for rule, text in reasons.items():
            expr = pl.when(pl.col("_rule") == rule).then(text).otherwise(expr)
        failed = failed.select("_i", expr.alias("_reason"))
        df = df.join(failed, on="_i", how="left", maintain_order="left")

        df, gaps = self._stateful(df)

        rejected = df.filter(pl.col("_rule").is_not_null())
        if "_raw" not in rejected.columns:  # typed sources: the raw payload is the record as JSON
            rejected = rejected.with_columns(pl.struct(fields).struct.json_encode().alias("_raw"))
        elif rejected.get_column("_raw").null_count():  # typed rows beside text ones (Arrow and JSON messages)
            rejected = rejected.with_columns(pl.coalesce("_raw", pl.struct(fields).struct.json_encode()).alias("_raw"))
        for rule in rejected.get_column("_rule").unique(maintain_order=True).to_list():
            if self.config.policy(rule) == Policy.RAISE:
                hit = rejected.filter(pl.col("_rule") == rule)
                raise SanitizeError(rule, hit.height, f"{hit['_reason'][0]} — {hit['_raw'][0]}")
        accepted = df.filter(pl.col("_rule").is_null()).select(fields)
        order, _ = storage_order(accepted, STORAGE_ORDER[self.table])
        if not np.array_equal(order, np.arange(len(order))):
            accepted = accepted[order]
        rejects = rejected.select(
            *(["_source"] if "_source" in rejected.columns else []),
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

    def _stateful(self, df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """duplicate, out_of_order and spike verdicts for the rows no earlier rule rejected, and
        the gap events of every row: one compiled pass (sanitize/kernel.py), the state updated."""
        from warehouse.sanitize.kernel import DUPLICATE, OUT_OF_ORDER, stateful_pass  # numba: on first use

        c = self.config
        key_frame = df.select(dedup_key_exprs(self.table)[2:])  # _g stands for (exchange, symbol)
        names = key_frame.columns  # the event time first: the kept keys are those within the tolerance
        state = self._keys if self._keys is not None else pl.DataFrame(
            schema={"_i": pl.UInt32, "_ts": pl.Int64, "_g": pl.UInt32, **key_frame.schema})  # fmt: skip
        codes, nulls = _codes(pl.concat([state.select(names), key_frame]))
        s = state.height
        g = _array(df["_g"], np.int64)
        seq = _array(df["seq"].fill_null(0), np.int64)
        verdict, newest, ref, keep, gap_row, gap_from = stateful_pass(
            g, _array(df["timestamp"], np.int64), _array(df.select(self._price().fill_null(0.0)).to_series(), np.float64),
            seq, _array(df["seq"].is_not_null(), np.bool_), _array(df["_rule"].is_null(), np.bool_),
            codes[s:], nulls[s:], _array(state["_g"], np.int64), codes[:s], nulls[:s],
            self._max, self._has_max, self._ring, self._ring_n, self._last, self._has_last,
            c.out_of_order_tolerance, c.spike_band, c.spike_window, c.spike_min_samples,
        )  # fmt: skip
        fresh = key_frame.with_columns(df["_g"], pl.col("timestamp").alias("_ts"))
        self._keys = (
            pl.concat([state.select("_ts", "_g", *names), fresh.select("_ts", "_g", *names)])
            .filter(pl.Series(keep))
            .select(pl.lit(None, pl.UInt32).alias("_i"), "_ts", "_g", *names)
        )
        tol, band = c.out_of_order_tolerance, c.spike_band
        hit = np.flatnonzero(verdict)
        if len(hit):
            flagged = df[hit].select(
                "_i", self._price().alias("_px"), pl.Series("_v", verdict[hit]), pl.Series("_ref", ref[hit]),
                (pl.Series("_newest", newest[hit]) - pl.col("timestamp")).alias("_behind"),
            )  # fmt: skip
            dev = (pl.col("_px") / pl.col("_ref") - 1).abs()
            flagged = flagged.select(
                "_i",
                pl.when(pl.col("_v") == DUPLICATE).then(pl.lit("duplicate"))
                .when(pl.col("_v") == OUT_OF_ORDER).then(pl.lit("out_of_order"))
                .otherwise(pl.lit("spike")).alias("_r2"),
                pl.when(pl.col("_v") == DUPLICATE)
                .then(pl.lit("duplicate of an earlier tick with the same dedup key"))
                .when(pl.col("_v") == OUT_OF_ORDER)
                .then(fmt_str("event time {} ns behind the newest tick of the symbol (tolerance {} ns)",
                              pl.col("_behind"), pl.lit(tol)))
                .otherwise(fmt_str("price {} deviates {}% from the rolling median {} (band {}%)",
                                   pl.col("_px"), (dev * 100).round(2), pl.col("_ref"), pl.lit(band * 100)))
                .alias("_why2"),
            )  # fmt: skip
            df = (
                df.join(flagged, on="_i", how="left", maintain_order="left")
                .with_columns(pl.coalesce("_rule", "_r2").alias("_rule"), pl.coalesce("_reason", "_why2").alias("_reason"))
                .drop(["_r2", "_why2"])
            )  # fmt: skip
        gaps = pl.DataFrame({
            "_g": g[gap_row], "from_seq": gap_from, "to_seq": seq[gap_row] - 1,
            "timestamp": df["timestamp"].to_numpy()[gap_row],
        }, schema={"_g": pl.UInt32, "from_seq": pl.Int64, "to_seq": pl.Int64, "timestamp": pl.Int64})  # fmt: skip
        gaps = gaps.with_columns((pl.col("to_seq") - pl.col("from_seq") + 1).alias("missing"))
        gaps = gaps.join(self._gid, on=G, how="left", maintain_order="left").select(list(_GAP_SCHEMA))
        return df, gaps


def _array(series: pl.Series, dtype: type) -> np.ndarray:
    """A writable, contiguous array of `dtype`: the compiled pass gets the same types on every
    call (numba compiles one version per read-only/writable combination of its arguments)."""
    return np.require(series.to_numpy(), dtype, ["C", "W"])


def _codes(keys: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Dedup key columns as int64 codes (rows × columns) and their null flags: integers as they
    are, floats by their bits (the values are finite and positive: equal bits, equal values),
    strings by a dictionary code (equal strings, equal codes)."""
    codes = np.zeros((keys.height, keys.width), np.int64)
    nulls = np.zeros((keys.height, keys.width), np.bool_)
    for j, col in enumerate(keys.iter_columns()):
        nulls[:, j] = col.is_null().to_numpy()
        if col.dtype == pl.String:
            col = col.cast(pl.Categorical).to_physical()
        elif col.dtype.is_temporal():
            col = col.to_physical()
        values = col.fill_null(0).to_numpy()
        codes[:, j] = values.view(np.int64) if values.dtype == np.float64 else values
    return codes, nulls


_WARMING = threading.Event()


def warm_in_background() -> None:
    """Load the compiled pass (numba's import and its disk cache, ≈ 1 s; compiled the first time
    on a machine) on a thread, by sanitizing one quote and one trade, while a driver opens its
    source (a consumer joins its group)."""
    if not _WARMING.is_set():
        _WARMING.set()
        threading.Thread(target=_warm, name="sanitize-kernel", daemon=True).start()


def _warm() -> None:
    common = {"timestamp": [time.time_ns()], "received_at": [time.time_ns()], "exchange": ["X"], "symbol": ["Y"],
              "asset_class": ["crypto"], "seq": [1], "_offset": [0]}  # fmt: skip
    Sanitizer(Kind.QUOTE).process(pl.DataFrame({**common, "bid": [1.0], "ask": [1.0], "bid_size": [1.0],
                                                "ask_size": [1.0]}))  # fmt: skip
    Sanitizer(Kind.TRADE).process(pl.DataFrame({**common, "trade_id": ["t"], "side": ["buy"], "price": [1.0],
                                                "size": [1.0]}))  # fmt: skip
