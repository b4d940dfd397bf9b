"""Decoding: a batch of message values → quote and trade batches plus one reject per bad message.

Wire format: one tick per message, JSON, key = symbol (all ticks of a symbol land in one
partition, in order). Fields are the internal names plus `type` ("quote" | "trade"):

    {"type":"quote","timestamp":1582329601096000000,"received_at":…,"exchange":"binance",
     "symbol":"BTCUSDT","asset_class":"crypto","bid":9681.92,"ask":9682.0,
     "bid_size":0.67,"ask_size":0.84,"seq":17}

Times are integer nanoseconds since the epoch (UTC). A capture worker (warehouse/capture)
sends two more types beside its ticks: `gap` (an outage of one instrument's stream: worker,
exchange, symbol, kind, from_ts, to_ts, dials, reason → wh.capture_gaps) and `reject` (a
frame it could not read: reason, raw, exchange, symbol, timestamp → wh.rejects at the
message's own topic/partition/offset, so a re-read stores it once). Decoding is vectorized: Arrow's JSON
reader for a clean batch, else polars (`json_path_match` finds rows that are JSON objects
with a type, `json_decode` reads them as text, `decode` types them with the same rules as
files); a message that is not UTF-8 or not valid JSON (NaN, Infinity and 1e400 are not
valid JSON numbers) is a `malformed` reject keeping its bytes, topic/partition and offset.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from warehouse.ingest.decode import FIELDS, OPTIONAL, TIME_FIELDS, Mapping, decode
from warehouse.records import CAPTURE_GAP_SCHEMA, Kind, SourceBatch, bounded_raw


def _decode_json(values: pl.Series, dtype: pl.Struct) -> tuple[pl.Series, np.ndarray]:
    """json_decode that isolates the rows it cannot read (bisection, rare)."""
    try:
        return values.str.json_decode(dtype=dtype), np.zeros(values.len(), dtype=bool)
    except pl.exceptions.PolarsError:
        if values.len() <= 16:
            parts, bad = [], np.zeros(values.len(), dtype=bool)
            for i in range(values.len()):
                one = values.slice(i, 1)
                try:
                    parts.append(one.str.json_decode(dtype=dtype))
                except pl.exceptions.PolarsError:
                    parts.append(pl.Series(values.name, [None], dtype=dtype))
                    bad[i] = True
            return pl.concat(parts), bad
        mid = values.len() // 2
        a, abad = _decode_json(values.slice(0, mid), dtype)
        b, bbad = _decode_json(values.slice(mid), dtype)
        return pl.concat([a, b]), np.concatenate([abad, bbad])


# the wire schema: `type` plus every quote and trade field, times as int64 ns (records.py)
_WIRE = pa.schema(
    [("type", pa.string())]
    + [
        (name, pa.string() if dtype == pl.String() else pl.Series([], dtype=dtype).to_arrow().type)
        for name, dtype in {**FIELDS[Kind.QUOTE], **FIELDS[Kind.TRADE]}.items()
    ]
)


def _read_wire(values: list[bytes]) -> pa.Table | None:
    """Fast path: Arrow's C++ JSON reader over the batch, typed by the wire schema.

    Any message it cannot read as one well-typed JSON object per line (invalid JSON, a
    newline inside, a string where a number belongs…) sends the batch to the slower
    per-field path, which isolates the bad messages.
    """
    import pyarrow.json as pajson

    if not values or min(map(len, values)) == 0:
        return None
    joined = b"\n".join(values)
    if joined.count(b"\n") != len(values) - 1:  # a newline inside a message
        return None
    try:
        table = pajson.read_json(
            io.BytesIO(joined),
            read_options=pajson.ReadOptions(use_threads=True, block_size=1 << 20),
            parse_options=pajson.ParseOptions(explicit_schema=_WIRE, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(values) else None


def _utf8_problem(value: bytes) -> str | None:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"message is not valid UTF-8 (byte 0x{value[exc.start]:02x} at position {exc.start}); raw shows it as \\x{value[exc.start]:02x}"
    return None


def decode_messages(
    topic: str,
    values: list[bytes | None],
    partitions: np.ndarray,
    offsets: np.ndarray,
    received: np.ndarray | None = None,
    kinds: list[str | None] | None = None,
) -> list[SourceBatch]:
    """Kafka message values → a quote batch, a trade batch, and malformed rejects.

    Every per-message problem is a reject of that message (no value, not UTF-8, not JSON,
    a field that does not parse…); the rest of the batch decodes. `received` holds each
    message's Kafka timestamp in ns (-1: none): the receipt time of a tick without one.
    `kinds`: per message, the tick type of an Arrow message (its `wh-type` header, see
    `arrow_kind`), None for JSON.
    """
    n = len(values)
    recv = received if received is not None else np.full(n, -1, dtype=np.int64)
    if kinds is not None and any(k is not None for k in kinds):
        is_arrow = np.fromiter((k is not None for k in kinds), dtype=bool, count=n)
        arrow = _decode_arrow(topic, [v for v, a in zip(values, is_arrow, strict=True) if a],
                              [k for k in kinds if k is not None], partitions[is_arrow], offsets[is_arrow],
                              recv[is_arrow])  # fmt: skip
        text = [v for v, a in zip(values, is_arrow, strict=True) if not a]
        plain = decode_messages(topic, text, partitions[~is_arrow], offsets[~is_arrow], recv[~is_arrow]) if text else []
        if not plain:
            return arrow
        return [_in_message_order(b) for b in _merge([*arrow, *plain])]
    joined = b"\n".join(v if v is not None else b"" for v in values)
    try:  # one C-speed check for the batch; per message only when it fails
        joined.decode("utf-8")
        problems: dict[int, str] = {i: "message has no value (a tombstone)" for i, v in enumerate(values) if v is None}
    except UnicodeDecodeError:
        problems = {}
        for i, v in enumerate(values):
            why = "message has no value (a tombstone)" if v is None else _utf8_problem(v)
            if why is not None:
                problems[i] = why
    if problems:
        bad = sorted(problems)
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        good = [v for v, k in zip(values, keep, strict=True) if k]
        rest = decode_messages(topic, good, partitions[keep], offsets[keep], recv[keep]) if good else []
        whole = _message_rejects(topic, values, partitions, offsets, [(i, problems[i]) for i in bad])
        return _merge([*rest, whole])
    return _decode_valid(topic, values, partitions, offsets, recv)  # type: ignore[arg-type]


def _decode_valid(
    topic: str, values: list[bytes], partitions: np.ndarray, offsets: np.ndarray, recv: np.ndarray
) -> list[SourceBatch]:
    """Messages that are all UTF-8 with a value."""
    raw = pl.Series("_raw", values, dtype=pl.Binary).cast(pl.String)
    frame = (
        pl.DataFrame({"_raw": raw, "_offset": offsets, "_p": partitions, "_recv_fallback": recv})
        .with_columns(
            (pl.lit(f"kafka:{topic}/") + pl.col("_p").cast(pl.String)).alias("_source"),
            pl.when(pl.col("_recv_fallback") >= 0).then(pl.col("_recv_fallback")).alias("_recv_fallback"),
        )
        .drop("_p")
    )
    fast = _read_wire(values)
    if fast is not None:
        typed = pl.from_arrow(fast)
        assert isinstance(typed, pl.DataFrame)
        return _typed_batches(pl.concat([frame, typed.rename({"type": "_type"})], how="horizontal"))
    if len(values) > 512:  # a few bad messages: keep the fast path for the rest (bisection)
        mid = len(values) // 2
        return _merge(_decode_valid(topic, values[:mid], partitions[:mid], offsets[:mid], recv[:mid])
                      + _decode_valid(topic, values[mid:], partitions[mid:], offsets[mid:], recv[mid:]))  # fmt: skip
    frame = frame.with_columns(raw.str.json_path_match("$.type").alias("_type"))
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        part = frame.filter(pl.col("_type") == str(kind))
        if part.height == 0:
            continue
        dtype = pl.Struct({f: pl.String for f in FIELDS[kind]})
        decoded, bad = _decode_json(part.get_column("_raw"), dtype)
        cols = decoded.struct.unnest() if decoded.len() else pl.DataFrame(schema=dict(dtype.to_schema()))
        part = pl.concat([part.drop("_type"), cols], how="horizontal").with_columns(pl.Series("_unreadable", bad))
        unreadable = part.filter(pl.col("_unreadable"))
        mapping = Mapping(kind, {f: f for f in FIELDS[kind]}, ts_unit="ns")
        rows, rejects = decode(part.filter(~pl.col("_unreadable")).drop("_unreadable"), mapping)
        if unreadable.height:
            rejects = pl.concat([rejects, _malformed(unreadable, "JSON this decoder cannot read (nested value?)")],
                                how="diagonal_relaxed")  # fmt: skip
        out.append(SourceBatch(kind, rows, rejects, 0))
    return out + _untyped(frame)


ARROW_CONTENT_TYPE = b"application/vnd.apache.arrow.stream"
_ARROW_TYPES = {Kind.QUOTE: pa.schema([(f, pl.Series([], dtype=t).to_arrow().type) for f, t in FIELDS[Kind.QUOTE].items()]),
                Kind.TRADE: pa.schema([(f, pl.Series([], dtype=t).to_arrow().type) for f, t in FIELDS[Kind.TRADE].items()])}  # fmt: skip


def arrow_kind(headers: list[tuple[str, bytes | None]] | None) -> str | None:
    """A message's headers → the tick type of an Arrow message ('' if the type is missing or
    unknown: the message is then a reject), or None for JSON (no Arrow content type)."""
    if not headers:
        return None
    found = dict(headers)
    if found.get("content-type") != ARROW_CONTENT_TYPE:
        return None
    kind = found.get("wh-type") or b""
    return kind.decode("ascii", "replace") if kind in (b"quote", b"trade") else ""


MAX_ARROW_ROWS = 100_000  # ticks in one message (wh feed sends ≤ --ticks-per-message, 1,000 by default)


class _BadArrow(ValueError):
    """An Arrow message wh does not take; the message is the reject's reason."""


def _arrow_table(value: bytes, k: Kind) -> pa.Table:
    """One message → a table of exactly the internal fields of kind `k`, validated: offsets and
    UTF-8 checked before anything reads the data (a crafted message could otherwise crash the
    process), at most MAX_ARROW_ROWS rows, times converted to ns from any timestamp unit."""
    table = pa.ipc.open_stream(value).read_all()
    if table.num_rows > MAX_ARROW_ROWS:
        raise _BadArrow(f"Arrow {k} message of {table.num_rows:,} rows (at most {MAX_ARROW_ROWS:,})")
    names = table.schema.names
    if len(set(names)) != len(names):
        raise _BadArrow(f"Arrow {k} message names a field twice")
    table.validate(full=True)  # ArrowInvalid: bad offsets, invalid UTF-8, …
    want = _ARROW_TYPES[k]
    if table.schema.equals(want):  # wh's own producer sends exactly this
        return table
    missing = [
        f for f in want.names if f not in OPTIONAL and (f not in names or pa.types.is_null(table.schema.field(f).type))
    ]
    if missing:
        raise _BadArrow(f"Arrow {k} message lacks field(s) {', '.join(missing)}")
    cols = []
    for f in want.names:
        if f not in names:
            cols.append(pa.nulls(table.num_rows, want.field(f).type))
            continue
        col, typ = table.column(f), table.schema.field(f).type
        if f in TIME_FIELDS:
            if pa.types.is_timestamp(typ):
                col = col.cast(pa.timestamp("ns", typ.tz)).cast(pa.int64())  # any unit → ns since the epoch
            elif not pa.types.is_integer(typ):
                raise _BadArrow(f"Arrow {k} message: {f} is {typ}, not a timestamp or integer ns")
        try:
            cols.append(col.cast(want.field(f).type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _BadArrow(
                f"Arrow {k} message has a field of the wrong type ({str(exc).splitlines()[0][:200]})"
            ) from None
    return pa.table(cols, schema=want)


def _decode_arrow(topic: str, values: list[bytes | None], kinds: list[str], partitions: np.ndarray,
                  offsets: np.ndarray, recv: np.ndarray) -> list[SourceBatch]:  # fmt: skip
    """Arrow messages → typed batches: many ticks per message, each row rejected on its own
    (its reject's source is the message, `kafka:topic/partition@offset`, and its source_offset
    the row). A message that is not a readable IPC stream of the type's fields is one reject."""
    tables: dict[Kind, list[pa.Table]] = {Kind.QUOTE: [], Kind.TRADE: []}
    index: dict[Kind, list[tuple[int, int]]] = {Kind.QUOTE: [], Kind.TRADE: []}  # (message, rows)
    bad: list[tuple[int, str]] = []
    for i, (value, kind) in enumerate(zip(values, kinds, strict=True)):
        if kind not in ("quote", "trade"):
            bad.append((i, "Arrow message without a wh-type header of quote or trade"))
            continue
        k = Kind(kind)
        try:  # anything wrong with the message is that message's reject: a partition never blocks
            table = _arrow_table(value or b"", k)
        except _BadArrow as exc:
            bad.append((i, str(exc)))
            continue
        except Exception as exc:
            bad.append(
                (
                    i,
                    f"not a readable Arrow IPC stream ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
                )
            )
            continue
        tables[k].append(table)
        index[k].append((i, table.num_rows))
    out: list[SourceBatch] = []
    for k, parts in tables.items():
        if not parts:
            continue
        frame = pl.from_arrow(pa.concat_tables(parts))
        assert isinstance(frame, pl.DataFrame)
        ids, sizes = (np.array(x, dtype=np.int64) for x in zip(*index[k], strict=True))
        msg = np.repeat(ids, sizes)
        row = np.arange(len(msg), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        frame = frame.with_columns(pl.Series("_offset", row))
        # a row's source is its message (kafka:topic/partition@offset), its receipt fallback the message's time
        frame = frame.with_columns(
            pl.format("kafka:{}/{}@{}", pl.lit(topic), pl.Series(partitions[msg]), pl.Series(offsets[msg])).alias(
                "_source"
            ),
            pl.Series("_recv_fallback", recv[msg]).replace(-1, None),
        )
        rows_, rejects = decode(frame, Mapping(k, {f: f for f in FIELDS[k]}, ts_unit="ns"))
        out.append(SourceBatch(k, rows_, rejects, 0))
    if bad:
        out.append(_message_rejects(topic, values, partitions, offsets, bad))
    return out


def _in_message_order(batch: SourceBatch) -> SourceBatch:
    """Rows of JSON and Arrow messages in one batch, back in (partition, offset, row) order: the
    stateful rules see an instrument's ticks as its partition holds them, whatever the encoding."""
    if batch.rows.height < 2 or "_source" not in batch.rows.columns:
        return batch
    src = pl.col("_source")
    at = src.str.extract(r"@(\d+)$").cast(pl.Int64)
    key = [src.str.extract(r"/(\d+)(?:@\d+)?$").cast(pl.Int64), pl.coalesce(at, pl.col("_offset")),
           pl.when(at.is_null()).then(0).otherwise(pl.col("_offset"))]  # fmt: skip
    rows = batch.rows.sort(key, maintain_order=True)
    return SourceBatch(batch.kind, rows, batch.rejects, batch.progress, batch.extra)


def _merge(batches: list[SourceBatch]) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        same = [b for b in batches if b.kind == kind]
        if same:
            extra: dict[str, list[pa.Table]] = {}
            for b in same:
                for table, data in b.extra.items():
                    extra.setdefault(table, []).append(data)
            out.append(SourceBatch(kind, pl.concat([b.rows for b in same], how="diagonal_relaxed"),
                                   pl.concat([b.rejects for b in same], how="diagonal_relaxed"), 0,
                                   {t: pa.concat_tables(parts) for t, parts in extra.items()}))  # fmt: skip
    return out


def _typed_batches(frame: pl.DataFrame) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    for kind in (Kind.QUOTE, Kind.TRADE):
        part = frame.filter(pl.col("_type") == str(kind))
        if part.height == 0:
            continue
        mapping = Mapping(kind, {f: f for f in FIELDS[kind]}, ts_unit="ns")
        rows, rejects = decode(part.select("_raw", "_offset", "_source", "_recv_fallback", *FIELDS[kind]), mapping)
        out.append(SourceBatch(kind, rows, rejects, 0))
    return out + _untyped(frame)


# Messages that are not ticks: what a capture worker (warehouse/capture) reports beside them
_GAP_FIELDS = {"worker": pl.String, "exchange": pl.String, "symbol": pl.String, "kind": pl.String,
               "from_ts": pl.Int64, "to_ts": pl.Int64, "dials": pl.Int64, "reason": pl.String}  # fmt: skip
_REPORT_FIELDS = {"reason": pl.String, "raw": pl.String, "exchange": pl.String, "symbol": pl.String,
                  "timestamp": pl.Int64}  # fmt: skip
_TYPES = ["quote", "trade", "gap", "reject"]


def _fields(part: pl.DataFrame, fields: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The messages' JSON fields as columns, and the messages that could not be read."""
    part = part.select("_source", "_offset", "_raw")
    decoded, bad = _decode_json(part.get_column("_raw"), pl.Struct(fields))
    cols = decoded.struct.unnest() if decoded.len() else pl.DataFrame(schema=fields)
    both = pl.concat([part, cols], how="horizontal").with_columns(pl.Series("_bad", bad))
    return both.filter(~pl.col("_bad")).drop("_bad"), both.filter(pl.col("_bad")).drop("_bad")


def _capture_gaps(part: pl.DataFrame) -> tuple[pa.Table, pl.DataFrame]:
    """`{"type": "gap", …}` messages → wh.capture_gaps rows, and those that are not complete."""
    rows, unreadable = _fields(part, _GAP_FIELDS)
    ok = (
        pl.all_horizontal(pl.col(c).is_not_null() for c in _GAP_FIELDS)
        & (pl.col("from_ts") >= 0) & (pl.col("from_ts") <= pl.col("to_ts")) & (pl.col("dials") >= 0)
        & pl.col("kind").is_in(["quote", "trade"])
        & pl.all_horizontal(pl.col(c).str.len_chars().is_between(1, 256) for c in ("worker", "exchange", "symbol"))
    )  # fmt: skip
    good, bad = rows.filter(ok), rows.filter(~ok)
    ts = pl.Datetime("ns", "UTC")
    table = good.select(
        pl.lit(time.time_ns()).cast(ts).alias("detected_at"), "worker", "exchange", "symbol", "kind",
        pl.col("from_ts").cast(ts), pl.col("to_ts").cast(ts),
        ((pl.col("to_ts") - pl.col("from_ts")) / 1e9).alias("seconds"), "dials", pl.col("reason").str.slice(0, 1000),
    ).to_arrow().cast(CAPTURE_GAP_SCHEMA)  # fmt: skip
    keep = ["_source", "_offset", "_raw"]
    return table, pl.concat([unreadable.select(keep), bad.select(keep)])


def _reports(part: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`{"type": "reject", …}` messages (a frame a capture worker could not read, with its raw
    text) → reject rows at the message's own Kafka position; incomplete ones separately."""
    rows, unreadable = _fields(part, _REPORT_FIELDS)
    ok = pl.col("reason").is_not_null() & pl.col("raw").is_not_null()
    good, bad = rows.filter(ok), rows.filter(~ok)
    rejects = good.select("_source", "_offset", pl.lit("malformed").alias("rule"), pl.col("reason").str.slice(0, 1000),
                          pl.col("raw").alias("_raw"), "exchange", "symbol", "timestamp")  # fmt: skip
    keep = ["_source", "_offset", "_raw"]
    return rejects, pl.concat([unreadable.select(keep), bad.select(keep)])


def _untyped(frame: pl.DataFrame) -> list[SourceBatch]:
    out: list[SourceBatch] = []
    parts: list[pl.DataFrame] = []
    extra: dict[str, pa.Table] = {}
    gaps = frame.filter(pl.col("_type") == "gap")
    if gaps.height:
        table, bad = _capture_gaps(gaps)
        if table.num_rows:
            extra["capture_gaps"] = table
        if bad.height:
            parts.append(_malformed(bad, "a gap event needs worker, exchange, symbol (1–256 characters), kind "
                                         "(quote | trade), 0 ≤ from_ts ≤ to_ts (ns), dials ≥ 0 and reason"))  # fmt: skip
    reports = frame.filter(pl.col("_type") == "reject")
    if reports.height:
        rejects, bad = _reports(reports)
        parts.append(rejects)
        if bad.height:
            parts.append(_malformed(bad, "a reject report needs reason and raw"))
    other = frame.filter(pl.col("_type").is_null() | ~pl.col("_type").is_in(_TYPES))
    if other.height:
        reason = 'not a JSON object with "type": "quote" | "trade" (invalid JSON, NaN/Infinity, or no type)'
        parts.append(_malformed(other, reason))
    if parts or extra:
        rejects = pl.concat(parts, how="diagonal_relaxed") if parts else _malformed(frame.clear(), "")
        out.append(SourceBatch(Kind.QUOTE, _NO_ROWS, rejects, 0, extra))
    return out


# a batch that holds only rejects (whole messages): no rows
_NO_ROWS = pl.DataFrame(schema={"_offset": pl.Int64, "_raw": pl.String, "_source": pl.String, **FIELDS[Kind.QUOTE]})


def _message_rejects(topic: str, values: list[bytes | None], partitions: np.ndarray, offsets: np.ndarray,
                     bad: list[tuple[int, str]]) -> SourceBatch:  # fmt: skip
    """Whole messages refused (index, reason) → `malformed` rejects at their own offsets, raw bytes kept."""
    rejects = pl.DataFrame(
        {
            "_source": [f"kafka:{topic}/{int(partitions[i])}" for i, _ in bad],
            "_offset": [int(offsets[i]) for i, _ in bad],
            "rule": ["malformed"] * len(bad),
            "reason": [why for _, why in bad],
            "_raw": [bounded_raw(values[i] or b"") for i, _ in bad],
            "exchange": pl.Series([None] * len(bad), dtype=pl.String),
            "symbol": pl.Series([None] * len(bad), dtype=pl.String),
            "timestamp": pl.Series([None] * len(bad), dtype=pl.Int64),
        },
        schema_overrides={"_offset": pl.Int64},
    )
    return SourceBatch(Kind.QUOTE, _NO_ROWS, rejects, 0)


def _malformed(frame: pl.DataFrame, reason: str) -> pl.DataFrame:
    return frame.select(
        "_source",
        "_offset",
        pl.lit("malformed").alias("rule"),
        pl.lit(reason).alias("reason"),
        pl.col("_raw").fill_null(""),
        pl.lit(None, pl.String).alias("exchange"),
        pl.lit(None, pl.String).alias("symbol"),
        pl.lit(None, pl.Int64).alias("timestamp"),
    )
