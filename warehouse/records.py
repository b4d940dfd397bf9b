"""Record types: the Arrow schemas here are the single definition of a tick.

Times are UTC, int64 nanoseconds since the epoch (Arrow `timestamp[ns, UTC]`);
`timestamp` is the exchange's event time, `received_at` our receipt time. The engines'
DDL (ddl/<engine>/) mirrors these schemas; a test checks that it does.

Dedup keys (what makes two rows "the same tick"):
  quotes: (exchange, symbol, timestamp, seq) — or, when the feed has no sequence
          numbers (seq is NULL, e.g. Tardis quotes, most FX feeds), (exchange, symbol,
          timestamp, received_at, bid, ask, bid_size, ask_size): only a true repeat
          (same time *and* same content) is a duplicate; distinct quotes that share a
          timestamp stay distinct, and re-importing a file still adds nothing.
  trades: (exchange, symbol, timestamp, trade_id).

Quote sizes are nullable: a feed that publishes no sizes stores NULL (never a made-up 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import polars as pl
import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")

ASSET_CLASSES: tuple[str, ...] = ("crypto", "equities", "etfs", "forex", "commodities", "indices")
SIDES: tuple[str, ...] = ("buy", "sell", "unknown")


class Kind(StrEnum):
    QUOTE = "quote"
    TRADE = "trade"


@dataclass
class SourceBatch:
    """What every source yields: typed rows in the internal layout (times int64 ns, plus
    `_offset` — line number, row ordinal or Kafka offset — and optionally `_raw`, `_source`,
    `_recv_fallback`), the rows it could not decode (REJECT_FRAME layout), and progress."""

    kind: Kind
    rows: pl.DataFrame
    rejects: pl.DataFrame  # _offset, rule, reason, _raw, exchange, symbol, timestamp (+ _source)
    progress: int  # bytes (files) or rows (synthetic) consumed so far
    extra: dict[str, pa.Table] = field(default_factory=dict)  # rows for other tables (capture_gaps)


# Rows a decoder could not read, before they become wh.rejects rows (pipeline/step.py)
REJECT_FRAME: dict[str, pl.DataType] = {
    "_offset": pl.Int64(), "rule": pl.String(), "reason": pl.String(), "_raw": pl.String(),
    "exchange": pl.String(), "symbol": pl.String(), "timestamp": pl.Int64(),
}  # fmt: skip


QUOTE_SCHEMA = pa.schema(
    [
        pa.field("timestamp", TS, nullable=False),
        pa.field("received_at", TS, nullable=False),
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("asset_class", pa.string(), nullable=False),
        pa.field("bid", pa.float64(), nullable=False),
        pa.field("ask", pa.float64(), nullable=False),
        pa.field("bid_size", pa.float64(), nullable=True),
        pa.field("ask_size", pa.float64(), nullable=True),
        pa.field("seq", pa.int64(), nullable=True),
    ]
)

TRADE_SCHEMA = pa.schema(
    [
        pa.field("timestamp", TS, nullable=False),
        pa.field("received_at", TS, nullable=False),
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("asset_class", pa.string(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("side", pa.string(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("size", pa.float64(), nullable=False),
        pa.field("seq", pa.int64(), nullable=True),
    ]
)


def internal_fields(schema: pa.Schema) -> dict[str, pl.DataType]:
    """A tick schema as the pipeline holds it in memory: times as int64 ns (UTC), the rest
    as the Arrow schema says. Decoders, the wire format and the replay all use these."""
    out: dict[str, pl.DataType] = {}
    for f in schema:
        out[f.name] = pl.Int64() if pa.types.is_timestamp(f.type) else pl.from_arrow(pa.array([], f.type)).dtype  # type: ignore[union-attr]
    return out


REJECT_SCHEMA = pa.schema(
    [
        pa.field("rejected_at", TS, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_offset", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("exchange", pa.string(), nullable=True),
        pa.field("symbol", pa.string(), nullable=True),
        pa.field("timestamp", TS, nullable=True),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

GAP_SCHEMA = pa.schema(
    [
        pa.field("detected_at", TS, nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("from_seq", pa.int64(), nullable=False),
        pa.field("to_seq", pa.int64(), nullable=False),
        pa.field("missing", pa.int64(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
    ]
)

# Offset ranges a broker expired before the consumer group read them (never silent).
STREAM_LOSS_SCHEMA = pa.schema(
    [
        pa.field("detected_at", TS, nullable=False),
        pa.field("group_id", pa.string(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("from_offset", pa.int64(), nullable=False),
        pa.field("to_offset", pa.int64(), nullable=False),
        pa.field("missing", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

# The capture worker's outages: when a stream's connection failed or stalled (from the last
# frame before to the first after), or its queue was full; one row per instrument.
CAPTURE_GAP_SCHEMA = pa.schema(
    [
        pa.field("detected_at", TS, nullable=False),
        pa.field("worker", pa.string(), nullable=False),
        pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("from_ts", TS, nullable=False),
        pa.field("to_ts", TS, nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("dials", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "market_ticks": QUOTE_SCHEMA,
    "trades": TRADE_SCHEMA,
    "rejects": REJECT_SCHEMA,
    "gaps": GAP_SCHEMA,
    "stream_losses": STREAM_LOSS_SCHEMA,
    "capture_gaps": CAPTURE_GAP_SCHEMA,
}

TABLE_FOR_KIND = {Kind.QUOTE: "market_ticks", Kind.TRADE: "trades"}
SCHEMA_FOR_KIND = {Kind.QUOTE: QUOTE_SCHEMA, Kind.TRADE: TRADE_SCHEMA}

# Columns that identify a row for idempotent writes (see module docstring).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "market_ticks": ("exchange", "symbol", "timestamp", "received_at", "seq", "bid", "ask", "bid_size", "ask_size"),
    "trades": ("exchange", "symbol", "timestamp", "trade_id"),
    "rejects": ("source", "source_offset", "rule"),
    "gaps": ("kind", "exchange", "symbol", "from_seq"),
    "stream_losses": ("group_id", "topic", "partition", "from_offset"),
    "capture_gaps": ("worker", "exchange", "symbol", "kind", "from_ts"),
}


def dedup_key_exprs(table: str) -> list[pl.Expr]:
    """Polars expressions forming the dedup key of `table` (one definition for all engines)."""
    if table == "market_ticks":
        no_seq = pl.col("seq").is_null()
        return [
            pl.col("exchange"),
            pl.col("symbol"),
            pl.col("timestamp"),
            pl.coalesce(pl.col("seq"), pl.col("received_at").dt.epoch("ns")).alias("_disc"),
            # without a sequence number the content is part of the identity
            *(pl.when(no_seq).then(pl.col(c)).alias(f"_k_{c}") for c in ("bid", "ask", "bid_size", "ask_size")),
        ]
    return [pl.col(c) for c in KEY_COLUMNS[table]]


RAW_LIMIT = 4096  # characters of a rejected payload kept in wh.rejects.raw


def bounded_raw(data: bytes, length: int | None = None) -> str:
    """A payload as text for wh.rejects.raw: invalid UTF-8 bytes shown as \\xNN, at most
    RAW_LIMIT characters (a longer one is cut and says how long it was). `length`: the
    payload's full length when `data` is only its head."""
    total = len(data) if length is None else length
    text = data[: RAW_LIMIT * 4].decode("utf-8", errors="backslashreplace")
    if len(text) > RAW_LIMIT or total > len(text.encode("utf-8", errors="surrogateescape")):
        return f"{text[:RAW_LIMIT]}… ({total:,} bytes)"
    return text


def bounded_raw_expr(col: str) -> pl.Expr:
    """The same bound on a text column (a reject's payload is one line, bounded in size)."""
    c = pl.col(col).fill_null("")
    n = c.str.len_bytes()
    return pl.when(n > RAW_LIMIT).then(fmt_str("{}… ({} bytes)", c.str.slice(0, RAW_LIMIT), n)).otherwise(c)


def fmt_str(template: str, *args: pl.Expr) -> pl.Expr:
    """`pl.format(template, *args)` built from `pl.concat_str`: same strings (null when an argument
    is null), without pl.format's intermittent panic (`assertion failed: i < self.len()`,
    pola-rs/polars#25525, met here once in the sanitizer)."""
    parts = template.split("{}")
    if len(parts) != len(args) + 1:
        raise ValueError(f"{template!r} has {len(parts) - 1} placeholders for {len(args)} values")
    exprs: list[pl.Expr] = [pl.lit(parts[0])]
    for arg, part in zip(args, parts[1:], strict=True):
        exprs += [arg.cast(pl.String), pl.lit(part)]
    return pl.concat_str(exprs)


def conform(df: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """Polars frame → Arrow table with exactly `schema` (column order, types, UTC ns)."""
    if df.height == 0:
        return schema.empty_table()
    return df.select([f.name for f in schema]).to_arrow().cast(schema)


# The trading ledger (ddl/*/00N_ledger.sql) — written by the simulator, read by the
# portfolio queries. Amounts are cash in the trader's currency; side is 'buy' | 'sell'.
# An instrument is (exchange, symbol): marks come from the quotes of the fill's venue
# (`exchange` came last, in a later migration, hence its place).
def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=null) for n, t, null in fields])


_S, _F = pa.string(), pa.float64()
TRADER_SCHEMA = _schema(("trader", _S, False), ("strategy", _S, False), ("params", _S, False),
                        ("initial_cash", _F, False), ("currency", _S, False), ("created_at", TS, False))  # fmt: skip
ORDER_SCHEMA = _schema(
    ("order_id", _S, False), ("trader", _S, False), ("created_at", TS, False), ("updated_at", TS, False),
    ("symbol", _S, False), ("asset_class", _S, False), ("side", _S, False), ("order_type", _S, False),
    ("time_in_force", _S, False), ("post_only", pa.bool_(), False), ("qty", _F, False),
    ("limit_price", _F, True), ("filled_qty", _F, False), ("avg_price", _F, True), ("status", _S, False),
    ("reason", _S, True), ("exchange", _S, False),
)  # fmt: skip
FILL_SCHEMA = _schema(
    ("fill_id", _S, False), ("order_id", _S, False), ("trader", _S, False), ("timestamp", TS, False),
    ("symbol", _S, False), ("asset_class", _S, False), ("side", _S, False), ("qty", _F, False),
    ("price", _F, False), ("fee", _F, False), ("slippage", _F, False), ("exchange", _S, False),
)  # fmt: skip
SNAPSHOT_SCHEMA = _schema(("trader", _S, False), ("timestamp", TS, False), ("cash", _F, False),
                          ("positions_value", _F, False), ("gross_exposure", _F, False), ("nav", _F, False))  # fmt: skip
LEDGER_SCHEMAS: dict[str, pa.Schema] = {
    "traders": TRADER_SCHEMA,
    "orders": ORDER_SCHEMA,
    "fills": FILL_SCHEMA,
    "portfolio_snapshots": SNAPSHOT_SCHEMA,
}

# Materialized analytics (ddl/*/00N_materialized.sql), refreshed per UTC day by `wh refresh`.
MATERIALIZED_SCHEMAS: dict[str, pa.Schema] = {
    "bars_1m": _schema(
        ("bar_start", TS, False), ("exchange", _S, False), ("symbol", _S, False), ("asset_class", _S, False),
        ("open", _F, False), ("high", _F, False), ("low", _F, False), ("close", _F, False),
        ("volume", _F, False), ("vwap", _F, False), ("trades", pa.uint64(), False),
    ),
    "leaderboard_daily": _schema(
        ("day", pa.date32(), False), ("rank", pa.uint64(), False), ("trader", _S, False), ("nav", _F, False),
        ("cash", _F, False), ("positions_value", _F, False), ("pnl", _F, False), ("total_return", _F, False),
    ),
}  # fmt: skip


# The order rows are stored in (DuckDB, batch by batch; the sanitizer emits it): each instrument's
# rows together, by event time, then receipt time; a quote's further columns break the remaining
# ties (the window order of wh.quote_zscores, NULLs last), a trade's keep their arrival order.
STORAGE_ORDER: dict[str, tuple[str, ...]] = {
    "market_ticks": ("exchange", "symbol", "timestamp", "received_at", "seq", "bid", "ask", "bid_size", "ask_size"),
    "trades": ("exchange", "symbol", "timestamp", "received_at"),
}


def storage_order(df: pl.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The stable permutation putting `df` in `columns` order — (exchange, symbol, timestamp,
    received_at, ties…), NULLs last — and each row's instrument number in that order. A full
    sort on nine columns costs ~0.6 s per million rows here; instead one int64 key (instrument
    number above the event time's offset in the batch) and the receipt time are checked for
    order (rows that come sorted are not sorted again) or sorted (~0.06 s), and only runs tied on
    both are sorted on the remaining columns. Batches spanning more than 13 days, or with 4,096
    instruments or more, sort the plain way."""
    keys = df.select("exchange", "symbol").unique().sort("exchange", "symbol").with_row_index("_g")
    g = df.select("exchange", "symbol").join(keys, on=["exchange", "symbol"], how="left", maintain_order="left",
                                             nulls_equal=True)  # fmt: skip
    group = g["_g"].cast(pl.Int64).to_numpy()
    if df.height == 0:
        return np.arange(0), group
    ts = df["timestamp"].cast(pl.Int64).to_numpy()
    lo, span = ts.min(), ts.max() - ts.min()
    if span >= 1 << 50 or keys.height >= 1 << 12:
        order = df.with_row_index("_i").sort(list(columns), nulls_last=True, maintain_order=True)["_i"].to_numpy()
        return order.astype(np.int64), group[order]
    key = (group << 50) + (ts - lo)
    received = df["received_at"].cast(pl.Int64).to_numpy()
    order_np = np.arange(df.height, dtype=np.int64)
    if not _in_order(key, received):  # already in order: a sorted file, one instrument's feed
        # instruments interleaved, each in time order (a feed): a stable radix sort by instrument
        order_np = np.argsort(group.astype(np.uint16), kind="stable")
        if not _in_order(key[order_np], received[order_np]):
            sorting = pl.DataFrame({"k": key, "r": received}).select(pl.arg_sort_by(["k", "r"], maintain_order=True))
            order_np = sorting.to_series().to_numpy().astype(np.int64)
    k_sorted, r_sorted = key[order_np], received[order_np]
    tied = (k_sorted[1:] == k_sorted[:-1]) & (r_sorted[1:] == r_sorted[:-1])
    if tied.any() and len(columns) > 4:  # rows sharing instrument, event and receipt time: order them by the rest
        at = np.flatnonzero(np.concatenate([[False], tied]) | np.concatenate([tied, [False]]))
        sub = df[order_np[at]].with_columns(pl.Series("_k", k_sorted[at]), pl.Series("_i", np.arange(len(at))))
        resorted = sub.sort(["_k", *columns[3:]], nulls_last=True, maintain_order=True)["_i"].to_numpy()
        order_np[at] = order_np[at][resorted]
    return order_np, group[order_np]


def _in_order(key: np.ndarray, received: np.ndarray) -> bool:
    step = np.diff(key)
    return bool(np.all((step > 0) | ((step == 0) & (np.diff(received) >= 0))))
