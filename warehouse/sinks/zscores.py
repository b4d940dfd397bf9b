"""The stored rolling z-score (issue 15): each quote's z over the default window, written with it.

`wh.quote_zscores` holds one row per quote of `wh.market_ticks`: the quote's identity, which is
also the window order (exchange, symbol, timestamp, received_at, seq, bid, ask, bid_size,
ask_size), and `window_rows`, `rolling_mean`, `rolling_std`, `z_score` as `queries/zscore.sql`
computes them over the instrument's last STORED_WINDOW quotes. The sinks call `ZScoreKeeper.rows`
with a batch's quotes before storing them and write what it returns after them:

- **Ring buffers.** Per instrument the keeper keeps the newest RING = 2·(W − 1) stored quotes, so
  a batch that continues the instrument — or holds late ticks landing among its newest W − 1
  quotes — needs no read: its windows are the ring plus the batch. A ring is trusted only while
  the instrument catalog (`wh.instruments`) still counts the quotes and newest time the ring was
  left at: another writer, a failed batch or a restart sends the instrument to the read below.
- **Warm start and deep late ticks.** Otherwise the keeper reads the stored context of the
  instrument (`queries/internal/zscore_context.sql`): the W − 1 quotes before the batch's first
  tick, every stored quote inside the batch's time range, the W − 1 after its last. This is the
  warm start after a restart, an import of an older day, a tick later than the ring reaches.
- **What is written.** The new quotes' rows, and the rows of stored quotes whose window now holds
  a new quote (the ≤ W − 1 after each): a late tick rewrites its followers' values. DuckDB
  replaces them in the batch's transaction; ClickHouse writes them as newer versions of a
  ReplacingMergeTree and, having no transactions, also recomputes every stored quote inside a
  retried batch's range (`heal`), so a crash between the quotes' insert and their z-scores'
  leaves nothing missing after the retry.

The numbers come from the exact O(1) kernel of analytics/rolling.py over the window order; the
invariant (tests/integration/test_stored_zscore.py): after imports, late ticks and kill -9
restarts, every stored row equals `queries/zscore.sql` on the final table within 1e-8, with
z_score NULL exactly on flat windows.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.analytics.rolling import STORED_WINDOW, warm_in_background, zscore_arrays
from warehouse.records import STORAGE_ORDER, storage_order
from warehouse.sql import queries
from warehouse.sql.engines import Engine

IDENTITY = STORAGE_ORDER["market_ticks"]  # a quote's identity is its place in storage order
_TS = pl.Datetime("ns", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IDENTITY_TYPES: dict[str, pl.DataType | type[pl.DataType]] = {
    "exchange": pl.String, "symbol": pl.String, "timestamp": _TS, "received_at": _TS, "seq": pl.Int64,
    "bid": pl.Float64, "ask": pl.Float64, "bid_size": pl.Float64, "ask_size": pl.Float64,
}  # fmt: skip

ZSCORE_SCHEMA = pa.schema([
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("timestamp", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("received_at", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("seq", pa.int64()),
    pa.field("bid", pa.float64(), nullable=False),
    pa.field("ask", pa.float64(), nullable=False),
    pa.field("bid_size", pa.float64()),
    pa.field("ask_size", pa.float64()),
    pa.field("window_rows", pa.uint32(), nullable=False),
    pa.field("rolling_mean", pa.float64(), nullable=False),
    pa.field("rolling_std", pa.float64(), nullable=False),
    pa.field("z_score", pa.float64()),
    pa.field("version", pa.uint64(), nullable=False),
])  # fmt: skip

# what ZScoreKeeper.rows returns: the table's rows and whether each replaces a stored row
_OUT_SCHEMA = ZSCORE_SCHEMA.append(pa.field("replaces", pa.bool_(), nullable=False))


@dataclass(frozen=True)
class Ring:
    """The newest stored quotes of one instrument (identity columns, window order) and the
    catalog state they reflect: `quotes` stored, the newest event time `last` (ns)."""

    rows: pl.DataFrame
    whole: bool  # the rows are the instrument's whole history
    quotes: int
    last: int


def _identity(df: pl.DataFrame) -> pl.DataFrame:
    return df.select([pl.col(c).cast(t) for c, t in _IDENTITY_TYPES.items()])


def _us_range(lo_ns: int, hi_ns: int) -> tuple[datetime, datetime]:
    """[lo, hi] in ns widened to whole µs (parameters bind at µs: a narrower `hi` would let quotes
    just after it take the places of those read after the range)."""
    return _EPOCH + timedelta(microseconds=lo_ns // 1_000), _EPOCH + timedelta(microseconds=-(-hi_ns // 1_000))


def _lookback_ns(before_ns: int, stat: tuple[int, int | None, int | None] | None, rows: int) -> int:
    """A time (ns) about 16× as far back from `before_ns` as `rows` of the instrument's quotes
    reach at its average spacing (the catalog's), minus a second; 0 without a spacing. Callers
    check what the bounded read returned."""
    if not stat or not stat[0] or stat[1] is None or stat[2] is None or stat[2] <= stat[1]:
        return 0
    spacing = (stat[2] - stat[1]) / stat[0]  # ns per quote on average
    return max(0, int(before_ns - 16 * rows * spacing - 1_000_000_000))


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(list(IDENTITY), nulls_last=True, maintain_order=True)


def window_order(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The permutation putting `df`'s quotes in window order (IDENTITY, NULLs last) and each
    row's instrument number in that order."""
    return storage_order(df, IDENTITY)


class ZScoreKeeper:
    """Computes a batch's stored z-score rows; one per sink (its rings are that sink's view)."""

    def __init__(self, window: int = STORED_WINDOW, *, trust_catalog: bool = True) -> None:
        """`trust_catalog`: the catalog changes with the rows in one transaction (DuckDB); else an
        instrument it shows no quotes of is counted in the table before it gets an empty ring,
        and versions start above the newest stored (ClickHouse: views keep its catalog, and a
        ReplacingMergeTree keeps the highest version, which a clock stepped back must not lose)."""
        warm_in_background()
        self.window = window
        self.trust_catalog = trust_catalog
        self._version = -1  # the last version written (-1: not yet read from the table)
        self._suspect: set[tuple[str, str]] = set()
        self.ring_size = 2 * (window - 1)
        self._rings: dict[tuple[str, str], Ring] = {}
        self._staged: dict[tuple[str, str], Ring | None] = {}

    # -- the batch's transaction ------------------------------------------------------------
    def commit(self) -> None:
        """The batch is stored: its rings become the trusted ones."""
        for key, ring in self._staged.items():
            if ring is None:
                self._rings.pop(key, None)
            else:
                self._rings[key] = ring
                self._suspect.discard(key)
        self._staged = {}

    def discard(self) -> None:
        """The batch failed: keep the rings as they were (the catalog check catches the rest)."""
        self._staged = {}

    # -- the rows -------------------------------------------------------------------------
    def rows(self, engine: Engine, new: pa.Table, *, heal: pa.Table | None = None,
             catalog: pa.Table | None = None) -> pa.Table:  # fmt: skip
        """The wh.quote_zscores rows to write for a batch whose not-yet-stored quotes are `new`
        (read before they are stored), plus a column `replaces`: the row is a stored quote's
        (its previous row must go). `heal`: quotes of the batch already stored (a retried
        batch on an engine without transactions) — their rows and followers are recomputed too.
        `catalog`: wh.instruments rows of the batch's instruments as the batch began (read here
        when None)."""
        self._staged = {}
        if heal is not None and heal.num_rows:
            heal = self._needs_healing(engine, heal)
        parts = [pl.from_arrow(t.select(list(IDENTITY))) for t in (new, heal) if t is not None and t.num_rows]
        if not parts:
            return _OUT_SCHEMA.empty_table()
        frames = [_identity(p) for p in parts if isinstance(p, pl.DataFrame)]
        new_df = frames[0].with_columns(pl.lit(True).alias("_new")) if new.num_rows else None
        heal_df = frames[-1] if heal is not None and heal.num_rows else None
        keys = pl.concat([f.select("exchange", "symbol") for f in frames]).unique().sort("exchange", "symbol")
        if catalog is None:
            catalog = queries.load("instruments").run(engine, {"symbols": keys["symbol"].unique().sort().to_list()})
        stats = self._catalog_stats(catalog)
        if not self.trust_catalog:
            self._check_empty(
                engine, [k for k in keys.iter_rows() if not stats.get(k, (0,))[0] and k not in self._rings]
            )
            if self._version < 0:
                found = queries.load("zscore_version", internal=True).run(engine, {}).column("version")[0].as_py()
                self._version = int(found or 0)
        healing = set() if heal_df is None else set(heal_df.select("exchange", "symbol").unique().iter_rows())
        cold = [k for k in keys.iter_rows()
                if k not in healing and k not in self._suspect and stats.get(k, (0,))[0]
                and self._current_ring(k, stats.get(k)) is None]  # fmt: skip
        if cold:
            self._load_rings(engine, cold, stats)
        fast: list[tuple[str, str]] = []
        deep: list[tuple[str, str]] = []
        for key in keys.iter_rows():
            ring = self._current_ring(key, stats.get(key))
            (fast if ring is not None and key not in healing else deep).append(key)

        merged: list[pl.DataFrame] = []
        reaches_end: dict[tuple[str, str], bool] = {}
        starts_whole: dict[tuple[str, str], bool] = {}
        if fast:
            fast_merged, failed = self._merge_rings(fast, new_df)
            merged.append(fast_merged)
            deep += failed
            for key in fast:
                if key not in failed:
                    reaches_end[key] = True
                    starts_whole[key] = self._rings[key].whole
        split = [{} if f is None or not deep else f.partition_by("exchange", "symbol", as_dict=True)
                 for f in (new_df, heal_df)]  # fmt: skip
        for key in deep:
            mine_new, mine_heal = (part.get(key) for part in split)
            ctx, whole, end = self._context(engine, key, mine_new, mine_heal, stats.get(key))
            merged.append(ctx)
            reaches_end[key], starts_whole[key] = end, whole
        return self._compute(pl.concat(merged, how="vertical"), stats, reaches_end, starts_whole, new_df)

    @staticmethod
    def _needs_healing(engine: Engine, heal: pa.Table) -> pa.Table:
        """The rows of `heal` of instruments some of whose stored quotes in the batch's time range
        have no z-score row (an interrupted write); a replay of a batch stored whole heals nothing.
        A write puts a batch's rewritten rows before its new ones, so an insert cut short always
        leaves a new quote without its row."""
        ts = heal.column("timestamp").cast(pa.int64())
        lo_ns, hi_ns = pc.min(ts).as_py(), pc.max(ts).as_py()
        coverage = queries.load("zscore_coverage", internal=True).run(engine, {
            "symbols": sorted(set(heal.column("symbol").to_pylist())),
            **dict(zip(("lo", "hi"), _us_range(lo_ns, hi_ns), strict=True)),
        })  # fmt: skip
        short = {(e, s) for e, s, q, z in zip(*(coverage.column(c).to_pylist()
                                                 for c in ("exchange", "symbol", "quotes", "scored")), strict=True)
                 if (z or 0) < q}  # fmt: skip
        if not short:
            return heal.slice(0, 0)
        mask = [(e, s) in short for e, s in zip(heal.column("exchange").to_pylist(), heal.column("symbol").to_pylist(),
                                                strict=True)]  # fmt: skip
        return heal.filter(pa.array(mask))

    def _load_rings(self, engine: Engine, keys: list[tuple[str, str]], stats: dict) -> None:
        """Rings of instruments this keeper has none of (a restart), from the table in one query:
        each instrument's newest RING stored quotes, reflecting the catalog as the batch began.
        An instrument whose read may have stopped short (fewer quotes than RING after the scan
        bound, older ones possible) gets none: its batch reads its context instead."""
        since_ns = min(_lookback_ns(stats[k][2] or 0, stats[k], self.ring_size) for k in keys)
        since = _us_range(since_ns, since_ns)[0]
        table = queries.load("zscore_rings", internal=True).run(
            engine, {"symbols": sorted({s for _, s in keys}), "since": since, "rows": self.ring_size}
        )
        got = _identity(pl.from_arrow(table))  # type: ignore[arg-type]
        parts = got.partition_by("exchange", "symbol", as_dict=True) if got.height else {}
        since_ns = (since - _EPOCH) // timedelta(microseconds=1) * 1_000
        for key in keys:
            quotes, first, last = stats[key]
            rows = parts.get(key)
            n = 0 if rows is None else rows.height
            if n == 0:
                continue
            complete = n == self.ring_size or (since_ns == 0 or (self.trust_catalog and first is not None
                                                                  and first >= since_ns))  # fmt: skip
            if not complete:
                continue
            whole = n < self.ring_size and (since_ns == 0 or self.trust_catalog)
            assert rows is not None
            self._rings[key] = Ring(_sorted(rows), whole and n == quotes, quotes, last if last is not None else 0)

    @staticmethod
    def _catalog_stats(catalog: pa.Table) -> dict[tuple[str, str], tuple[int, int | None, int | None]]:
        """(exchange, symbol) → (quotes, first quote ns, last quote ns) from catalog rows."""
        df = pl.from_arrow(catalog.select(["exchange", "symbol", "quotes", "first_quote_ts", "last_quote_ts"]))
        assert isinstance(df, pl.DataFrame)
        df = df.with_columns(pl.col("first_quote_ts", "last_quote_ts").cast(pl.Int64))
        return {(e, s): (int(q or 0), f, la) for e, s, q, f, la in df.iter_rows()}

    def _check_empty(self, engine: Engine, keys: list[tuple[str, str]]) -> None:
        """Instruments the catalog shows no quotes of that the table has: read, not assumed empty."""
        if not keys:
            return
        counts = queries.load("stored_quote_counts", internal=True).run(
            engine, {"symbols": sorted({s for _, s in keys})}
        )
        wanted = set(keys)
        self._suspect |= {
            (e, s) for e, s, n in zip(*(counts.column(c).to_pylist() for c in ("exchange", "symbol", "quotes")),
                                      strict=True)
            if n and (e, s) in wanted
        }  # fmt: skip

    def _current_ring(self, key: tuple[str, str], stat: tuple[int, int | None, int | None] | None) -> Ring | None:
        """The instrument's ring if the catalog still says what it said when the ring was left;
        an instrument the catalog has no quotes of starts with an empty, whole ring."""
        quotes = stat[0] if stat else 0
        if key in self._suspect:
            return None
        if quotes == 0:
            if key not in self._rings:
                self._rings[key] = Ring(_identity(pl.DataFrame(schema=_IDENTITY_TYPES)), True, 0, 0)
            ring = self._rings[key]
            return ring if ring.quotes == 0 else None
        kept = self._rings.get(key)
        if kept is None or stat is None or kept.quotes != quotes or kept.last != stat[2]:
            return None
        return kept

    def _merge_rings(self, keys: list[tuple[str, str]], new_df: pl.DataFrame | None,
                     ) -> tuple[pl.DataFrame, list[tuple[str, str]]]:  # fmt: skip
        """The rings of `keys` with their new quotes, in window order; instruments whose first new
        quote has fewer than W − 1 ring quotes before it (and a ring that is not the whole history)
        are returned to be read instead."""
        wanted = pl.DataFrame(keys, schema={"exchange": pl.String, "symbol": pl.String}, orient="row")
        rings = [self._rings[k].rows for k in keys if self._rings[k].rows.height]
        parts = [pl.concat(rings, how="vertical").with_columns(pl.lit(False).alias("_new"))] if rings else []
        if new_df is not None:
            every = new_df.select(pl.struct("exchange", "symbol").n_unique()).item() == len(keys)
            parts.append(new_df if every else new_df.join(wanted, on=["exchange", "symbol"], how="semi"))
        merged = pl.concat(parts, how="vertical").with_columns(pl.lit(False).alias("_heal"))
        order, group = window_order(merged)
        merged = merged[order]
        n = merged.height
        starts = np.flatnonzero(np.diff(group, prepend=-1))
        position = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        first_new = np.minimum.reduceat(np.where(merged["_new"].to_numpy(), position, n), starts)
        failed = []
        for start, pos in zip(starts, first_new, strict=True):
            key = (merged["exchange"][int(start)], merged["symbol"][int(start)])
            if pos < self.window - 1 and not self._rings[key].whole:
                failed.append(key)
        if failed:
            bad = pl.DataFrame(failed, schema={"exchange": pl.String, "symbol": pl.String}, orient="row")
            merged = merged.join(bad, on=["exchange", "symbol"], how="anti", maintain_order="left")
        return merged, failed

    def _context(self, engine: Engine, key: tuple[str, str], new_df: pl.DataFrame | None,
                 heal_df: pl.DataFrame | None, stat: tuple[int, int | None, int | None] | None,
                 ) -> tuple[pl.DataFrame, bool, bool]:  # fmt: skip
        """The instrument's stored context read with its new quotes (`new_df`, `heal_df`: the
        batch's rows of this instrument); (rows, starts at the history's beginning, reaches its
        newest stored quote)."""
        exchange, symbol = key
        mine = [f for f in (new_df, heal_df) if f is not None]
        times = pl.concat([m.select("timestamp") for m in mine])["timestamp"].cast(pl.Int64)
        lo_ns, hi_ns = int(times.min()), int(times.max())  # type: ignore[arg-type]
        lo, hi = _us_range(lo_ns, hi_ns)
        back = _lookback_ns(lo_ns, stat, self.window)
        since = _us_range(back, back)[0]
        params = {"exchange": exchange, "symbol": symbol, "lo": lo, "hi": hi, "window": self.window}
        table = queries.load("zscore_context", internal=True).run(engine, {**params, "since": since})
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        before = df.filter(pl.col("part") == 0).height
        since_ns = (since - _EPOCH) // timedelta(microseconds=1) * 1_000
        older = not (self.trust_catalog and stat and stat[1] is not None and stat[1] >= since_ns)
        if before < self.window - 1 and since > _EPOCH and older:  # older quotes may lie beyond the bound
            df = pl.from_arrow(queries.load("zscore_context", internal=True).run(engine, {**params, "since": _EPOCH}))
            assert isinstance(df, pl.DataFrame)
            before = df.filter(pl.col("part") == 0).height
        after = df.filter(pl.col("part") == 2).height
        # healing (a retried batch): every stored quote in the batch's range is recomputed
        healing = (df["part"] == 1) if heal_df is not None else pl.Series([False] * df.height, dtype=pl.Boolean)
        stored = _identity(df).with_columns(pl.lit(False).alias("_new"), healing.alias("_heal"))
        parts = [stored]
        if new_df is not None:
            parts.append(new_df.with_columns(pl.lit(False).alias("_heal")))
        return _sorted(pl.concat(parts, how="vertical")), before < self.window - 1, after < self.window - 1

    def _compute(self, merged: pl.DataFrame, stats: dict, reaches_end: dict[tuple[str, str], bool],
                 starts_whole: dict[tuple[str, str], bool], new_df: pl.DataFrame | None) -> pa.Table:  # fmt: skip
        """Run the kernel over the instruments' merged rows; keep the rows whose window holds a
        new (or healed) quote; stage each instrument's ring."""
        n = merged.height  # each instrument's rows contiguous and in window order (the parts are)
        w = self.window
        if n == 0:
            return _OUT_SCHEMA.empty_table()
        group = merged.select(pl.struct("exchange", "symbol").rle_id().alias("g"))["g"].to_numpy()
        starts = np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1, [n]]).astype(np.int64)
        z, mean, std = zscore_arrays(merged["bid"].to_numpy(), starts, w)
        index = np.arange(n, dtype=np.int64)
        first = np.repeat(starts[:-1], np.diff(starts))  # each row's group start
        window_rows = np.minimum(index - first + 1, w)
        trigger = (merged["_new"] | merged["_heal"]).to_numpy()
        last_trigger = np.maximum.accumulate(np.where(trigger, index, -1))
        emit = last_trigger >= np.maximum(index - w + 1, first)
        out = (
            merged.select(IDENTITY)
            .with_columns(
                pl.Series("window_rows", window_rows, pl.UInt32),
                pl.Series("rolling_mean", mean),
                pl.Series("rolling_std", std),
                pl.Series("z_score", z, nan_to_null=True),
                pl.lit(self._next_version(), pl.UInt64).alias("version"),
                (~merged["_new"]).alias("replaces"),
            )
            .filter(pl.Series(emit))
        )
        if out["replaces"].any():  # rewritten rows first (see _needs_healing)
            out = out.sort("replaces", descending=True, maintain_order=True)
        self._stage(merged, starts, stats, reaches_end, starts_whole, new_df)
        return out.to_arrow().cast(_OUT_SCHEMA)

    def _next_version(self) -> int:
        """Write time in ns, but always above the last version written (a clock stepped back)."""
        self._version = max(time.time_ns(), self._version + 1)
        return self._version

    def _stage(self, merged: pl.DataFrame, starts: np.ndarray, stats: dict, reaches_end: dict,
               starts_whole: dict, new_df: pl.DataFrame | None) -> None:  # fmt: skip
        added: dict[tuple[str, str], tuple[int, int]] = {}
        if new_df is not None and new_df.height:
            per = new_df.group_by("exchange", "symbol").agg(pl.len(), pl.col("timestamp").max().cast(pl.Int64))
            added = {(e, s): (int(c), int(t)) for e, s, c, t in per.iter_rows()}
        ident = merged.select(IDENTITY)
        for a, b in itertools.pairwise(starts):
            key = (merged["exchange"][int(a)], merged["symbol"][int(a)])
            if not reaches_end.get(key):
                self._staged[key] = None
                continue
            quotes, _, last = stats.get(key, (0, None, None))
            count, newest = added.get(key, (0, None))
            lasts = [t for t in (last, newest) if t is not None]
            rows = ident.slice(int(max(a, b - self.ring_size)), int(min(b - a, self.ring_size)))
            whole = bool(starts_whole.get(key)) and b - a <= self.ring_size
            self._staged[key] = Ring(rows, whole, quotes + count, max(lasts) if lasts else 0)
