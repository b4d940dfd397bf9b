"""Decode string/loosely-typed columns into the internal tick layout, vectorized.

A value that does not parse or a required value that is missing makes the row a
`malformed` reject (with the column and the offending text); the other rows go on.
Text fields (exchange, symbol, asset class, trade id, side) must not hold control
characters (a newline or NUL byte in a symbol is a reject, not a new instrument).

Optional per row: `seq` (NULL), `side` ("unknown"), the quote sizes (NULL: a feed that
publishes no sizes, common for FX), and `received_at`: a row without a receipt time takes
the source's fallback — the Kafka message timestamp for streams (`_recv_fallback`, the
same on every re-read, so a replay stays idempotent), else the event time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from warehouse.errors import MissingColumnError, SourceError
from warehouse.records import QUOTE_SCHEMA, TRADE_SCHEMA, Kind, fmt_str, internal_fields

# internal field → polars dtype after decoding (times are int64 ns): from records.py
QUOTE_FIELDS: dict[str, pl.DataType] = internal_fields(QUOTE_SCHEMA)
TRADE_FIELDS: dict[str, pl.DataType] = internal_fields(TRADE_SCHEMA)
FIELDS = {Kind.QUOTE: QUOTE_FIELDS, Kind.TRADE: TRADE_FIELDS}
OPTIONAL = {"seq", "received_at", "side", "bid_size", "ask_size"}
# text fields must be printable: a control character (newline, NUL, …) makes the row malformed
_CONTROL = r"[\x00-\x1f\x7f]"
TIME_FIELDS = ("timestamp", "received_at")
UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

_SIDES = {
    "buy": "buy", "b": "buy", "bid": "buy", "bought": "buy",
    "sell": "sell", "s": "sell", "ask": "sell", "sold": "sell",
}  # fmt: skip

RejectFrame = pl.DataFrame  # columns: _offset, rule, reason, _raw, exchange, symbol, timestamp


@dataclass
class Mapping:
    """How a source's columns become tick fields.

    columns: field → source column; constants: field → value for every row;
    ts_unit: unit of numeric timestamps (s, ms, us, ns); ts_format: strftime format for
    textual timestamps (ISO 8601 when None and the column is text that is not a number).
    """

    kind: Kind
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    ts_unit: str = "us"
    ts_format: str | None = None

    def __post_init__(self) -> None:
        if self.ts_unit not in UNIT_NS:
            raise SourceError(f"timestamp unit {self.ts_unit!r}; use one of s, ms, us, ns")
        fields = FIELDS[self.kind]
        unknown = (set(self.columns) | set(self.constants)) - set(fields)
        if unknown:
            raise SourceError(
                f"unknown {self.kind} field(s) {', '.join(sorted(unknown))}; fields are {', '.join(fields)}"
            )

    def source_columns(self) -> list[str]:
        return list(self.columns.values())

    def check(self, available: list[str], path: str | None) -> None:
        for col in self.columns.values():
            if col not in available:
                raise MissingColumnError(col, path=path, available=available)
        for name in FIELDS[self.kind]:
            if name not in self.columns and name not in self.constants and name not in OPTIONAL:
                raise MissingColumnError(name, path=path, available=available)


def _time_expr(col: str, m: Mapping, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(int64 ns expression, 'value present' expression) for a time column."""
    c = pl.col(col)
    if isinstance(dtype, pl.Datetime):
        return c.dt.epoch("ns"), c.is_not_null()
    if dtype.is_integer():
        return c.cast(pl.Int64) * UNIT_NS[m.ts_unit], c.is_not_null()
    if m.ts_format is not None:
        parsed = (
            c.cast(pl.String)
            .str.strip_chars()
            .str.to_datetime(format=m.ts_format, time_unit="ns", time_zone="UTC", strict=False)
        )
        return parsed.dt.epoch("ns"), c.is_not_null()
    text = c.cast(pl.String).str.strip_chars()
    scale = UNIT_NS[m.ts_unit]
    as_int = text.cast(pl.Int64, strict=False)
    # fractional numbers ("1582329601.096") via float, rounded to the microsecond
    as_float = text.cast(pl.Float64, strict=False)
    from_float = (as_float * (scale / 1_000)).round(0).cast(pl.Int64, strict=False) * 1_000
    iso = text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False).dt.epoch("ns")
    numeric = (
        pl.when(as_int.is_not_null())
        .then(as_int * scale)
        .when(as_float.is_finite())
        .then(from_float if scale >= 1_000 else as_float.cast(pl.Int64, strict=False))
        .otherwise(iso)
    )
    return numeric, c.is_not_null() & (text != "")


def _clean_text(column: pl.Series) -> bool:
    """A text column whose distinct values (few: exchanges, symbols, asset classes) are all
    present, already stripped and free of control characters: it can be taken as it is.
    Checking the distinct values costs a hash pass instead of a strip and a regex per row."""
    if column.null_count() or column.len() == 0:
        return False
    if column.len() > 4_096 and column.head(4_096).n_unique() > 1_024:
        return False  # many distinct values (trade ids): the per-row path is cheaper than a hash pass
    uniq = column.unique()
    if uniq.len() > max(1_024, column.len() // 16):
        return False
    return bool((uniq.str.strip_chars() == uniq).all() and (uniq.str.len_bytes() > 0).all()
                and not uniq.str.contains(_CONTROL).any())  # fmt: skip


def decode(frame: pl.DataFrame, m: Mapping) -> tuple[pl.DataFrame, RejectFrame]:
    """Source columns (+ `_offset`, optional `_raw`, `_source`) → (typed rows, malformed rejects).

    `_source` (per row, e.g. "kafka:ticks/3") overrides the import's source name in rejects.
    """
    fields = FIELDS[m.kind]
    exprs: list[pl.Expr] = []
    bad: list[pl.Expr] = []
    flags: list[pl.Expr] = []
    for name, dtype in fields.items():
        if name in m.columns:
            col = m.columns[name]
            raw = pl.col(col)
            src = frame.schema[col]
            if name in TIME_FIELDS:
                value, present = _time_expr(col, m, src)
            elif src.is_numeric() and dtype.is_numeric():
                value = raw.cast(dtype, strict=False)
                present = raw.is_not_null()
            elif dtype == pl.String() and src == pl.String() and _clean_text(frame.get_column(col)):
                value, present, control = raw, pl.lit(True), pl.lit(False)  # every distinct value checked once
            elif dtype == pl.String():
                value = (raw if src == pl.String() else raw.cast(pl.String)).str.strip_chars()
                present = (value.str.len_bytes() > 0).fill_null(False)
                control = value.str.contains(_CONTROL).fill_null(False)
            else:
                text = raw.cast(pl.String).str.strip_chars()
                value = text.cast(dtype, strict=False)
                present = raw.is_not_null() & (text != "")
            exprs.append(value.alias(name))
            failed = present & value.is_null() if dtype != pl.String() else control
            missing = ~present & pl.lit(name not in OPTIONAL)
            flags.append((failed | missing).alias(f"_bad_{name}"))
            bad.append(
                pl.when(failed & pl.lit(dtype == pl.String()))
                .then(pl.lit(f"control character (newline, NUL, …) in {name} (column '{col}')"))
                .when(failed)
                .then(fmt_str("cannot parse {} from column '{}': '{}'", pl.lit(name), pl.lit(col), raw.cast(pl.String)))
                .when(missing)
                .then(pl.lit(f"missing {name} (column '{col}')"))
            )
        elif name in m.constants:
            exprs.append(pl.lit(m.constants[name]).cast(dtype).alias(name))
        elif name == "received_at":
            exprs.append(pl.lit(None, pl.Int64).alias(name))  # set to event time below
        elif name == "side":
            exprs.append(pl.lit("unknown").alias(name))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    # Cheap boolean flags for every row; reason texts and raw payloads only for bad rows.
    is_bad = pl.any_horizontal(flags) if flags else pl.lit(False)
    frame = frame.with_columns(is_bad.alias("_is_bad"))
    good_src = frame.filter(~pl.col("_is_bad"))
    bad_src = frame.filter(pl.col("_is_bad"))
    keep = [c for c in ("_offset", "_raw", "_source") if c in frame.columns]
    ok = good_src.select([*keep, *exprs, *([pl.col("_recv_fallback")] if "_recv_fallback" in frame.columns else [])])
    fallback = pl.col("timestamp")
    if "_recv_fallback" in ok.columns:
        fallback = pl.coalesce(pl.col("_recv_fallback"), fallback)
    ok = ok.with_columns(pl.coalesce(pl.col("received_at"), fallback).alias("received_at"))
    if "_recv_fallback" in ok.columns:
        ok = ok.drop("_recv_fallback")
    if m.kind == Kind.TRADE:
        side = pl.col("side").str.to_lowercase()
        ok = ok.with_columns(side.replace_strict(_SIDES, default="unknown").fill_null("unknown").alias("side"))
    raw = pl.col("_raw") if "_raw" in frame.columns else raw_json(m.source_columns())
    ident = [e for e in exprs if e.meta.output_name() in ("exchange", "symbol", "timestamp")]
    rejects = bad_src.select(
        *(["_source"] if "_source" in frame.columns else []),
        pl.col("_offset"),
        pl.lit("malformed").alias("rule"),
        pl.coalesce(bad).alias("reason"),
        raw.alias("_raw"),
        *ident,
    )
    fill: dict[str, pl.DataType] = {"exchange": pl.String(), "symbol": pl.String(), "timestamp": pl.Int64()}
    for name, dtype in fill.items():
        if name not in rejects.columns:
            rejects = rejects.with_columns(pl.lit(None, dtype).alias(name))
    rejects = rejects.select(
        "_offset",
        "rule",
        "reason",
        "_raw",
        "exchange",
        "symbol",
        "timestamp",
        *(["_source"] if "_source" in frame.columns else []),
    )
    return ok, rejects


def raw_csv(columns: list[str]) -> pl.Expr:
    """The row as text, fields joined by commas (how it looked in the file)."""
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns], separator=",")


def raw_json(columns: list[str]) -> pl.Expr:
    return pl.struct([pl.col(c) for c in columns]).struct.json_encode()
