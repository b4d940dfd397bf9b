"""History back out of the warehouse, in one strict order, in constant memory.

`replay(engine, symbols, since, until)` yields polars DataFrames of ticks (quotes and
trades interleaved, schema `TICK_SCHEMA`) in the order of the clock's key:

    event clock:   (timestamp, received_at, seq, kind, exchange, symbol, trade_id, prices, sizes)
    receipt clock: (received_at, timestamp, seq, kind, …)

The columns are the tables' own (records.py), times as int64 ns.

kind 0 = quote, 1 = trade (a quote and a trade with equal times: the quote first). The key
covers every column, so the sequence is a function of the stored rows alone: the same
rows give the same sequence whichever engine they come from.

How: the range is cut into hours of event time; a plan query counts the ticks per hour, and
consecutive hours are grouped into slices of at most `slice_rows` ticks (an hour is never
split), so a long quiet range costs few queries and a busy one stays bounded in memory.
Each slice reads the quotes and the trades of the symbols (queries/internal/replay_*.sql)
and merges the two sources into one run: a sort on the clock's time, widened to the numeric
head of the key (times, seq, kind) and then to the full key only where ties remain. Batches of `batch_rows` go out;
only one slice is in memory at a time.

The receipt clock still slices on event time (the tables are partitioned by it): a tick
is held back until no later slice can hold an earlier receipt, which is guaranteed when
receipt ≥ event − `max_skew_ns`; a violation raises ReplayOrderError instead of
reordering silently.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import polars as pl
import pyarrow as pa

from warehouse.errors import QueryError, ReplayOrderError
from warehouse.records import QUOTE_SCHEMA, TRADE_SCHEMA, internal_fields
from warehouse.sql import queries
from warehouse.sql.engines import Engine

Clock = Literal["event", "receipt"]
NS = 1_000_000_000

# the tables' column names (records.py), times as int64 ns, plus `kind` (0 quote, 1 trade)
_FIELDS = {**internal_fields(QUOTE_SCHEMA), **internal_fields(TRADE_SCHEMA)}
TICK_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Int64(), "received_at": pl.Int64(), "seq": pl.Int64(), "kind": pl.Int8(),
    **{k: v for k, v in _FIELDS.items() if k not in ("timestamp", "received_at", "seq")},
}  # fmt: skip
QUOTE, TRADE = 0, 1
_TAIL = ["kind", "exchange", "symbol", "trade_id", "bid", "ask", "bid_size", "ask_size", "price", "size", "side"]
KEYS: dict[str, list[str]] = {
    "event": ["timestamp", "received_at", "seq", *_TAIL],
    "receipt": ["received_at", "timestamp", "seq", *_TAIL],
}


@dataclass
class ReplayStats:
    ticks: int = 0
    quotes: int = 0
    trades: int = 0
    slices: int = 0
    expected: int = 0  # ticks in the range, counted before the replay starts (progress bars)
    first_ns: int | None = None
    last_ns: int | None = None
    venues: dict[str, list[str]] = field(default_factory=dict)  # symbol → the exchanges its ticks come from


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(when: datetime) -> int:
    """Exact ns since the epoch (naive datetimes are UTC)."""
    d = (when if when.tzinfo else when.replace(tzinfo=UTC)) - _EPOCH
    return (d.days * 86_400 + d.seconds) * NS + d.microseconds * 1000


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns % NS) // 1000)


def _frame(table: pa.Table, kind: int) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    # the slice queries name their int64 times apart from the DateTime64 columns they filter on
    df = df.rename({"ts_event": "timestamp", "ts_recv": "received_at"}, strict=False)
    df = df.with_columns([pl.col(c).cast(pl.String) for c in ("exchange", "symbol", "asset_class")
                          if c in df.columns] + [pl.lit(kind, pl.Int8).alias("kind")])  # fmt: skip
    missing = [pl.lit(None, t).alias(c) for c, t in TICK_SCHEMA.items() if c not in df.columns]
    return df.with_columns(missing).select([pl.col(c).cast(t) for c, t in TICK_SCHEMA.items()])


def slices(engine: Engine, symbols: Sequence[str], since: datetime, until: datetime, slice_ns: int,
           exchange: str = "") -> tuple[pl.DataFrame, dict[str, list[str]]]:  # fmt: skip
    """The event-time slices (index, ticks) that hold ticks of `symbols` in [since, until), in
    order, and the venues each symbol's ticks come from (symbol → sorted exchanges)."""
    table = queries.load("replay_slices", internal=True).run(
        engine, {"symbols": list(symbols), "exchange": exchange, "since": since, "until": until, "slice_ns": slice_ns})  # fmt: skip
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(pl.col("exchange", "symbol").cast(pl.String))
    plan = (df.group_by("slice").agg(pl.col("ticks").sum()).sort("slice")
            .select(pl.col("slice").cast(pl.Int64), pl.col("ticks").cast(pl.Int64)))  # fmt: skip
    venues = df.group_by("symbol").agg(pl.col("exchange").unique().sort()).sort("symbol")
    return plan, dict(zip(venues["symbol"].to_list(), venues["exchange"].to_list(), strict=True))


def replay(
    engine: Engine,
    symbols: Sequence[str],
    since: datetime,
    until: datetime,
    *,
    clock: Clock = "event",
    slice_seconds: int = 3600,
    slice_rows: int = 250_000,
    batch_rows: int = 262_144,
    speed: float | None = None,
    max_skew_ns: int = NS,
    stats: ReplayStats | None = None,
    exchange: str = "",
) -> Iterator[pl.DataFrame]:
    """Ticks of `symbols` (on `exchange`, or every venue) with event time in [since, until), in
    strict `clock` order, in batches. `stats.venues` is filled before the first batch."""
    if clock not in KEYS:
        raise QueryError(f"clock {clock!r}: use event or receipt")
    if slice_seconds < 1 or batch_rows < 1:
        raise QueryError("slice_seconds and batch_rows must be positive")
    st = stats if stats is not None else ReplayStats()
    step = slice_seconds * NS
    plan, st.venues = slices(engine, symbols, since, until, step, exchange)
    st.expected = int(plan["ticks"].sum()) if plan.height else 0
    todo = _group(plan["slice"].to_list(), plan["ticks"].to_list(), slice_rows)
    key = KEYS[clock]
    lead = key[0]
    qq = queries.load("replay_quotes", internal=True)
    qt = queries.load("replay_trades", internal=True)
    lo_ns, hi_ns = _ns(since), _ns(until)
    held = pl.DataFrame(schema=TICK_SCHEMA)
    watermark = -(2**63)  # the last emitted lead value
    pacer = _Pacer(speed)
    for span in [*todo, None]:  # None: flush what the receipt clock still holds
        if span is None and not held.height:
            break
        parts = [held]
        stop = (span[1] + 1) * step if span is not None else hi_ns
        if span is not None:
            params = {
                "symbols": list(symbols),
                "exchange": exchange,
                "since": _dt(max(span[0] * step, lo_ns)),
                "until": _dt(min(stop, hi_ns)),
            }
            parts += [_frame(qq.run(engine, params), QUOTE), _frame(qt.run(engine, params), TRADE)]
            st.slices += 1
        run = _merge(pl.concat(parts, how="vertical"), key)
        if clock == "receipt" and span is not None:
            ready = run.filter(pl.col("received_at") < stop - max_skew_ns)
            held = run.filter(pl.col("received_at") >= stop - max_skew_ns)
            run = ready
        else:
            held = pl.DataFrame(schema=TICK_SCHEMA)
        if run.height:
            lo = run[lead][0]
            if lo < watermark:
                raise ReplayOrderError(
                    f"a tick received at {lo} ns comes after one received at {watermark} ns: its receipt time "
                    f"is more than max_skew ({max_skew_ns / NS:g} s) before its event time; raise --max-skew"
                )
            watermark = run[lead][-1]
        for offset in range(0, run.height, batch_rows):
            batch = run.slice(offset, batch_rows)
            st.ticks += batch.height
            n_trades = int((batch["kind"] == TRADE).sum())
            st.trades += n_trades
            st.quotes += batch.height - n_trades
            st.first_ns = batch[lead][0] if st.first_ns is None else st.first_ns
            st.last_ns = batch[lead][-1]
            yield from pacer.pace(batch, lead)


def _group(index: list[int], ticks: list[int], slice_rows: int) -> list[tuple[int, int]]:
    """Hour indexes with ticks → (first, last) spans of at most `slice_rows` ticks (an hour is never split)."""
    spans: list[tuple[int, int]] = []
    first, last, total = -1, -1, 0
    for i, n in zip(index, ticks, strict=True):
        if total and total + n > slice_rows:
            spans.append((first, last))
            total = 0
        if not total:
            first = i
        last, total = i, total + n
    if total:
        spans.append((first, last))
    return spans


def _merge(run: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Sort by the whole key, cheaply: by the lead time alone when it has no ties (nanosecond
    feeds); else by the numeric head (times, seq, kind); the full key only where ties remain."""
    out = run.sort(key[0], maintain_order=True)
    if not _ties(out, key[:1]):
        return out
    out = out.sort(key[:4], maintain_order=True)
    if not _ties(out, key[:4]):
        return out
    return out.sort(key, nulls_last=True, maintain_order=True)


def _ties(frame: pl.DataFrame, cols: list[str]) -> bool:
    """Do two neighbouring rows agree on all of `cols`?"""
    return bool(frame.select(pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in cols]).any()).item())


class _Pacer:
    """Speed multiple of real time: emit each tick once wall time reaches its (scaled) clock time."""

    def __init__(self, speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise QueryError("speed must be positive (or None for as fast as possible)")
        self.speed = speed
        self.t0_wall: float | None = None
        self.t0_ns = 0

    def pace(self, batch: pl.DataFrame, lead: str) -> Iterator[pl.DataFrame]:
        if self.speed is None:
            yield batch
            return
        ts = batch[lead].to_numpy()
        if self.t0_wall is None:
            self.t0_wall, self.t0_ns = time.monotonic(), int(ts[0])
        due = self.t0_wall + (ts - self.t0_ns) / NS / self.speed
        i = 0
        while i < len(ts):
            now = time.monotonic()
            if due[i] > now:
                time.sleep(min(due[i] - now, 0.25))
                continue
            j = int((due <= now).sum())  # due is non-decreasing
            yield batch.slice(i, max(j, i + 1) - i)
            i = max(j, i + 1)
