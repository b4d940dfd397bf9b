"""The Sink protocol and the idempotent-write logic shared by the engine sinks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.records import KEY_COLUMNS, SCHEMAS, STORAGE_ORDER, dedup_key_exprs, storage_order
from warehouse.sinks.zscores import ZScoreKeeper
from warehouse.sql import queries
from warehouse.sql.engines import Engine

WriteBatch = dict[str, pa.Table]


@dataclass
class WriteCounts:
    stored: dict[str, int] = field(default_factory=dict)  # rows newly written per table
    existing: dict[str, int] = field(default_factory=dict)  # rows already there (skipped)

    def add(self, other: WriteCounts) -> None:
        for k, v in other.stored.items():
            self.stored[k] = self.stored.get(k, 0) + v
        for k, v in other.existing.items():
            self.existing[k] = self.existing.get(k, 0) + v


class Sink(Protocol):
    name: str
    keeps_offsets: bool

    def write(self, batch: WriteBatch, position: StreamPosition | None = None) -> WriteCounts: ...
    def stored_offsets(self, group: str, topic: str) -> dict[int, int] | None: ...
    def stored_state(self, group: str, topic: str) -> dict[str, bytes]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us_bounds(ts: pa.ChunkedArray) -> tuple[datetime, datetime]:
    """[min, max] of ns timestamps widened to whole microseconds (params bind at µs)."""
    ns = ts.cast(pa.int64())
    lo, hi = pc.min(ns).as_py(), pc.max(ns).as_py()
    return (_EPOCH + timedelta(microseconds=lo // 1_000 - 1),
            _EPOCH + timedelta(microseconds=-(-hi // 1_000) + 1))  # fmt: skip


@dataclass(frozen=True)
class StreamPosition:
    """Which messages a batch holds: per partition, the first and last offset; `state` is the
    sanitizer state after the batch (stored with the offsets by the sink that keeps them)."""

    group: str
    topic: str
    ranges: dict[int, tuple[int, int]]
    state: dict[str, bytes] = field(default_factory=dict, compare=False, hash=False)

    def token(self, table: str) -> str:
        """ClickHouse insert_deduplication_token: the same batch edges give the same token."""
        edges = ";".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(self.ranges.items()))
        return hashlib.sha256(f"{self.group}|{self.topic}|{table}|{edges}".encode()).hexdigest()


class SinkBase:
    """Shared behaviour: idempotent write of every table of a batch, context manager.

    Subclasses say how to find stored keys (`_existing`) and how to append (`_append`);
    `_begin`/`_commit`/`_rollback` wrap a batch where the engine has transactions.
    """

    name = "base"
    keeps_offsets = False  # True: stores stream offsets in the same transaction as rows
    atomic = False  # True: a batch's tables commit together (DuckDB)
    zscores: ZScoreKeeper | None = None  # set by sinks that store wh.quote_zscores

    def write(self, batch: WriteBatch, position: StreamPosition | None = None) -> WriteCounts:
        counts = WriteCounts()
        stored: dict[str, pa.Table] = {}
        self._begin()
        try:
            catalog = self._batch_catalog(batch)  # read once: the lookup skip and the catalog merge
            newest = newest_stored(catalog)
            for table, data in batch.items():
                if data.num_rows == 0:
                    continue
                data = prepare(table, data)
                lookup = maybe_stored(data, newest) if table in ("market_ticks", "trades") else data
                new = only_new(table, data, self._existing(table, lookup) if lookup.num_rows else None)
                zscores = self._zscore_rows(data, new, catalog) if table == "market_ticks" else None
                self._append(table, new, position)
                if zscores is not None and zscores.num_rows:
                    self._write_zscores(zscores)
                counts.stored[table] = new.num_rows
                counts.existing[table] = data.num_rows - new.num_rows
                if table in ("market_ticks", "trades") and new.num_rows:
                    stored[table] = new
            if stored:
                self._note_instruments(instrument_summary(stored), catalog)
            if position is not None:
                self._store_position(position)
            self._commit()
        except BaseException:
            self._rollback()
            if self.zscores is not None:
                self.zscores.discard()
            raise
        if self.zscores is not None:
            self.zscores.commit()
        return counts

    def _zscore_rows(self, data: pa.Table, new: pa.Table, catalog: pa.Table | None) -> pa.Table | None:
        """The batch's stored z-score rows (sinks/zscores.py), computed before its quotes are
        stored. Without transactions, quotes of the batch found stored (a retry after a crash
        between the quotes and their z-scores) have theirs recomputed too."""
        if self.zscores is None:
            return None
        heal = None
        if not self.atomic and new.num_rows < data.num_rows:
            heal = _instruments_with_stored_rows(data, new)
        return self.zscores.rows(self._zscore_engine(), new, heal=heal, catalog=catalog if self.atomic else None)

    def _zscore_engine(self) -> Engine:
        raise NotImplementedError

    def _write_zscores(self, rows: pa.Table) -> None:
        """Store z-score rows; `replaces` marks those of stored quotes (their old rows go)."""
        raise NotImplementedError

    def _existing(self, table: str, data: pa.Table) -> pa.Table | None:
        raise NotImplementedError

    def _catalog(self, symbols: list[str]) -> pa.Table | None:
        """wh.instruments rows of `symbols`, read where they change with the rows in one
        transaction (None: every row is looked up)."""
        return None

    def _batch_catalog(self, batch: WriteBatch) -> pa.Table | None:
        """The catalog rows of the batch's instruments (None: this sink keeps none)."""
        symbols = sorted({s for t in ("market_ticks", "trades") if t in batch and batch[t].num_rows
                          for s in pc.unique(batch[t].column("symbol")).to_pylist()})  # fmt: skip
        return self._catalog(symbols) if symbols else None

    def _append(self, table: str, data: pa.Table, position: StreamPosition | None = None) -> None:
        raise NotImplementedError

    def _store_position(self, position: StreamPosition) -> None:
        """Sinks that can store offsets atomically with the rows do it here."""

    def _note_instruments(self, summary: pa.Table, catalog: pa.Table | None) -> None:
        """Add the newly stored rows' per-instrument summary to wh.instruments (`catalog`: its
        rows for the batch's instruments as the batch began), where the engine does not keep
        it itself (ClickHouse: materialized views)."""

    def stored_offsets(self, group: str, topic: str) -> dict[int, int] | None:
        """Next offset per partition as stored with the rows, or None if the sink keeps none."""
        return None

    def stored_state(self, group: str, topic: str) -> dict[str, bytes]:
        """The stream state stored with those offsets (empty if the sink keeps none)."""
        return {}

    def _begin(self) -> None:
        """No transactions by default."""

    def _commit(self) -> None:
        """No transactions by default."""

    def _rollback(self) -> None:
        """No transactions by default."""

    def flush(self) -> None:
        """Writes are synchronous: nothing is buffered."""

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def existing_keys(engine: Engine, table: str, data: pa.Table) -> pa.Table | None:
    """Rows of `table` already stored that may share a dedup key with `data` (a superset)."""
    if table in ("market_ticks", "trades"):
        lo, hi = _us_bounds(data.column("timestamp"))
        symbols = pc.unique(data.column("symbol")).to_pylist()
        return queries.load(f"existing_{table}", internal=True).run(engine, {"symbols": symbols, "lo": lo, "hi": hi})
    if table == "rejects":
        parts = []
        sources = pc.unique(data.column("source")).to_pylist()
        messages = [x for x in sources if "@" in x]  # an Arrow message's rows: one query for all of them
        if messages:
            parts.append(queries.load("existing_rejects_of", internal=True).run(engine, {"sources": messages}))
        for source in (x for x in sources if "@" not in x):
            offs = pc.filter(data.column("source_offset"), pc.equal(data.column("source"), source))
            parts.append(
                queries.load("existing_rejects", internal=True).run(
                    engine, {"source": source, "lo": pc.min(offs).as_py(), "hi": pc.max(offs).as_py()}
                )
            )
        return pa.concat_tables(parts) if parts else None
    if table == "gaps":
        parts = []
        for kind in pc.unique(data.column("kind")).to_pylist():
            symbols = pc.unique(data.column("symbol")).to_pylist()
            parts.append(queries.load("existing_gaps", internal=True).run(engine, {"kind": kind, "symbols": symbols}))
        return pa.concat_tables(parts) if parts else None
    if table == "capture_gaps":
        symbols = pc.unique(data.column("symbol")).to_pylist()
        return queries.load("existing_capture_gaps", internal=True).run(engine, {"symbols": symbols})
    if table == "stream_losses":
        parts = []
        pairs = {
            (g, t) for g, t in zip(data.column("group_id").to_pylist(), data.column("topic").to_pylist(), strict=True)
        }
        for group, topic in sorted(pairs):
            parts.append(
                queries.load("existing_stream_losses", internal=True).run(engine, {"group_id": group, "topic": topic})
            )
        return pa.concat_tables(parts) if parts else None
    raise KeyError(table)


def _instruments_with_stored_rows(data: pa.Table, new: pa.Table) -> pa.Table:
    """The rows of `data` of instruments some of whose rows were already stored."""
    ids = ["exchange", "symbol"]
    a, b = pl.from_arrow(data.select(ids)), pl.from_arrow(new.select(ids))
    assert isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame)
    counts = a.group_by(ids).len().join(b.group_by(ids).len(), on=ids, how="left").fill_null(0)
    partly = counts.filter(pl.col("len") != pl.col("len_right")).select(ids)
    df = pl.from_arrow(data)
    assert isinstance(df, pl.DataFrame)
    return df.join(partly, on=ids, how="semi").to_arrow()


def newest_stored(catalog: pa.Table | None) -> pl.DataFrame | None:
    """Per (exchange, symbol) the newest event time stored, as ns (None: unknown)."""
    if catalog is None:
        return None
    df = pl.from_arrow(catalog.select(["exchange", "symbol", "last_ts"]))
    assert isinstance(df, pl.DataFrame)
    return df.select("exchange", "symbol", pl.col("last_ts").dt.epoch("ns").alias("_newest"))


def maybe_stored(data: pa.Table, newest: pl.DataFrame | None) -> pa.Table:
    """The rows of `data` that may share a dedup key with a stored row: those of instruments
    whose earliest tick in the batch is not after the newest stored for that instrument. The
    key holds the event time, so a row newer than everything stored of its instrument cannot
    match one — the stored-key lookup is skipped for it (a live feed's batches, an import of
    a new day). `newest` None: all rows."""
    if newest is None:
        return data
    df = pl.from_arrow(data.select(["exchange", "symbol", "timestamp"]))
    assert isinstance(df, pl.DataFrame)
    first = df.group_by("exchange", "symbol").agg(pl.col("timestamp").min().dt.epoch("ns").alias("_first"))
    old = first.join(newest, on=["exchange", "symbol"], how="inner").filter(pl.col("_first") <= pl.col("_newest"))
    if old.height == 0:
        return data.slice(0, 0)
    if old.height == first.height:
        return data
    keep = df.join(old.select("exchange", "symbol").with_columns(pl.lit(True).alias("_old")),
                   on=["exchange", "symbol"], how="left", maintain_order="left")["_old"].fill_null(False)  # fmt: skip
    return data.filter(keep.to_arrow())


def instrument_summary(stored: dict[str, pa.Table]) -> pa.Table:
    """Per (exchange, symbol) of newly stored quotes and trades: asset class, first and last
    event time, quotes, trades — the rows of wh.instruments a batch adds."""
    parts = []
    for table, column in (("market_ticks", "quotes"), ("trades", "trades")):
        if table in stored:
            df = pl.from_arrow(stored[table].select(["exchange", "symbol", "asset_class", "timestamp"]))
            assert isinstance(df, pl.DataFrame)
            # naive UTC ns, like the catalog's columns (a batch's quotes and trades must stack)
            df = df.with_columns(pl.col("timestamp").cast(pl.Int64).cast(pl.Datetime("ns")))
            quotes = table == "market_ticks"
            parts.append(
                df.group_by("exchange", "symbol").agg(
                    pl.col("asset_class").min(),
                    pl.col("timestamp").min().alias("first_ts"),
                    pl.col("timestamp").max().alias("last_ts"),
                    (pl.col("timestamp").min() if quotes else pl.lit(None, pl.Datetime("ns"))).alias("first_quote_ts"),
                    (pl.col("timestamp").max() if quotes else pl.lit(None, pl.Datetime("ns"))).alias("last_quote_ts"),
                    pl.len().cast(pl.Int64).alias(column),
                )
            )
    return merge_instruments(pl.concat(parts, how="diagonal") if parts else None).to_arrow()


def merge_instruments(*frames: pl.DataFrame | None) -> pl.DataFrame:
    """Catalog rows added up per (exchange, symbol): min/max of the times, sums of the counts."""
    times = ("first_ts", "last_ts", "first_quote_ts", "last_quote_ts")
    df = pl.concat([f.with_columns(pl.col(times).cast(pl.Datetime("ns")))
                    for f in frames if f is not None and f.height], how="diagonal")  # fmt: skip
    for column in ("quotes", "trades"):
        if column not in df.columns:
            df = df.with_columns(pl.lit(0, pl.Int64).alias(column))
    return (
        df.group_by("exchange", "symbol")
        .agg(
            pl.col("asset_class").min(),
            pl.col("first_ts").min(),
            pl.col("last_ts").max(),
            pl.col("first_quote_ts").min(),  # nulls (no quote) ignored
            pl.col("last_quote_ts").max(),
            pl.col("quotes").fill_null(0).sum(),
            pl.col("trades").fill_null(0).sum(),
        )
        .sort("exchange", "symbol")
    )


def only_new(table: str, data: pa.Table, existing: pa.Table | None) -> pa.Table:
    """Anti-join `data` against stored keys; the key definition is records.dedup_key_exprs."""
    if existing is None or existing.num_rows == 0:
        return data
    keys = dedup_key_exprs(table)
    cols = list(KEY_COLUMNS[table])
    new = pl.from_arrow(data)
    want = pa.schema([pa.field(c, data.schema.field(c).type) for c in cols])
    old = pl.from_arrow(existing.select(cols).cast(want))
    assert isinstance(new, pl.DataFrame) and isinstance(old, pl.DataFrame)
    new_k = new.with_columns(keys).with_row_index("_row")
    old_k = old.with_columns(keys)
    key_names = [e.meta.output_name() for e in keys]
    kept = new_k.join(old_k.select(key_names).unique(), on=key_names, how="anti", nulls_equal=True)
    rows = kept.get_column("_row").sort()
    return data.take(pa.array(rows.to_numpy()))


def prepare(table: str, data: pa.Table) -> pa.Table:
    return data.cast(SCHEMAS[table])


def sort_for_storage(table: str, data: pa.Table) -> pa.Table:
    """Rows in STORAGE_ORDER (records.py); a batch that comes in it — the sanitizer emits it — is
    only checked."""
    columns = STORAGE_ORDER.get(table)
    if not columns or data.num_rows < 2:
        return data
    df = pl.from_arrow(data)
    assert isinstance(df, pl.DataFrame)
    order, _ = storage_order(df, columns)
    if np.array_equal(order, np.arange(len(order))):
        return data
    return data.take(pa.array(order))
