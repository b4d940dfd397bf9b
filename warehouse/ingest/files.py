"""File sources: Tardis.dev CSV, generic CSV and Parquet with a column mapping.

All stream: CSV through pyarrow's incremental reader (block by block), Parquet row group
by row group. CSV cells are read as text and decoded by `decode` so that one bad cell
rejects one row, not the file. Lines with the wrong number of fields are caught by
pyarrow's invalid-row handler and become `malformed` rejects with the line's text.
`_offset` is the 1-based physical line number for CSV, the row ordinal for Parquet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from warehouse.errors import SourceError
from warehouse.ingest.decode import Mapping, decode, raw_csv
from warehouse.records import Kind

BLOCK_BYTES = 8 << 20

TARDIS_QUOTES = ["exchange", "symbol", "timestamp", "local_timestamp",
                 "ask_amount", "ask_price", "bid_price", "bid_amount"]  # fmt: skip
TARDIS_TRADES = ["exchange", "symbol", "timestamp", "local_timestamp",
                 "id", "side", "price", "amount"]  # fmt: skip


def tardis_mapping(kind: Kind, asset_class: str = "crypto") -> Mapping:
    """Tardis.dev CSV: times are integer microseconds; Tardis sells crypto data only."""
    common = {"timestamp": "timestamp", "received_at": "local_timestamp",
              "exchange": "exchange", "symbol": "symbol"}  # fmt: skip
    if kind == Kind.QUOTE:
        cols = {**common, "bid": "bid_price", "ask": "ask_price",
                "bid_size": "bid_amount", "ask_size": "ask_amount"}  # fmt: skip
    else:
        cols = {**common, "trade_id": "id", "side": "side", "price": "price", "size": "amount"}
    return Mapping(kind, cols, {"asset_class": asset_class}, ts_unit="us")


@dataclass
class SourceBatch:
    kind: Kind
    rows: pl.DataFrame  # internal layout + _offset, _raw
    rejects: pl.DataFrame  # _offset, rule, reason, _raw, exchange, symbol, timestamp
    progress: int  # bytes (files) or rows (synthetic) consumed so far


def _header(path: Path) -> list[str]:
    with path.open("rb") as f:
        first = f.readline().decode("utf-8", errors="replace").strip()
    if not first:
        raise SourceError("empty file (no header line)", path=str(path))
    return [c.strip() for c in first.split(",")]


def detect_tardis_kind(path: Path) -> Kind:
    header = _header(path)
    if set(TARDIS_QUOTES) <= set(header):
        return Kind.QUOTE
    if set(TARDIS_TRADES) <= set(header):
        return Kind.TRADE
    looks_quotes = len(set(header) & set(TARDIS_QUOTES)) >= len(set(header) & set(TARDIS_TRADES))
    expected = TARDIS_QUOTES if looks_quotes else TARDIS_TRADES
    missing = [c for c in expected if c not in header]
    raise SourceError(
        f"not a Tardis quotes or trades file: missing column(s) {', '.join(missing)} "
        f"(header: {','.join(header)})",
        path=str(path),
    )


def _line_numbers(valid_start: int, n: int, invalid_sorted: np.ndarray) -> np.ndarray:
    """Physical 1-based line numbers of valid data rows valid_start..valid_start+n-1.

    Line 1 is the header; invalid lines (sorted) are skipped in the valid numbering.
    """
    v = np.arange(valid_start, valid_start + n, dtype=np.int64)
    if invalid_sorted.size == 0:
        return v + 2
    # valid rows before invalid line j: L_j - 2 - j
    before = invalid_sorted - 2 - np.arange(invalid_sorted.size)
    return v + 2 + np.searchsorted(before, v, side="right")


def iter_csv(path: Path, mapping: Mapping) -> Iterator[SourceBatch]:
    header = _header(path)
    mapping.check(header, str(path))
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    handle = path.open("rb")
    try:
        reader = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                null_values=[""],  # "NaN" is a value (rejected as non_finite), not a missing cell
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        handle.close()
        raise SourceError(f"cannot read CSV: {exc}", path=str(path)) from exc
    try:
        yield from _csv_batches(path, mapping, header, reader, handle, invalid)
    finally:
        handle.close()


def _csv_batches(
    path: Path,
    mapping: Mapping,
    header: list[str],
    reader: pacsv.CSVStreamingReader,
    handle: BinaryIO,
    invalid: list[tuple[int, str]],
) -> Iterator[SourceBatch]:
    size = max(os.path.getsize(path), 1)
    valid_seen = 0
    all_invalid: list[int] = []
    emitted_invalid = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            batch = None
        except pa.ArrowInvalid as exc:
            raise SourceError(f"CSV parse error: {exc}", path=str(path)) from exc
        new_invalid = invalid[emitted_invalid:]
        emitted_invalid = len(invalid)
        all_invalid.extend(n for n, _ in new_invalid)
        rejects = pl.DataFrame(
            {
                "_offset": [n for n, _ in new_invalid],
                "rule": ["malformed"] * len(new_invalid),
                "reason": [f"line has the wrong number of fields (expected {len(header)})"]
                * len(new_invalid),
                "_raw": [t for _, t in new_invalid],
                "exchange": [None] * len(new_invalid),
                "symbol": [None] * len(new_invalid),
                "timestamp": [None] * len(new_invalid),
            },
            schema={"_offset": pl.Int64, "rule": pl.String, "reason": pl.String,
                    "_raw": pl.String, "exchange": pl.String, "symbol": pl.String,
                    "timestamp": pl.Int64},
        )
        if batch is None:
            if rejects.height:
                yield SourceBatch(mapping.kind, _empty_rows(mapping), rejects, size)
            return
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        assert isinstance(frame, pl.DataFrame)
        lines = _line_numbers(valid_seen, frame.height, np.array(sorted(all_invalid), dtype=np.int64))
        valid_seen += frame.height
        frame = frame.with_columns(
            pl.Series("_offset", lines, dtype=pl.Int64), raw_csv(header).alias("_raw")
        )
        rows, bad = decode(frame, mapping)
        yield SourceBatch(mapping.kind, rows, pl.concat([rejects, bad]), min(size, handle.tell()))


def _empty_rows(mapping: Mapping) -> pl.DataFrame:
    from warehouse.ingest.decode import FIELDS

    schema = {"_offset": pl.Int64(), "_raw": pl.String(), **FIELDS[mapping.kind]}
    return pl.DataFrame(schema=schema)


def iter_parquet(path: Path, mapping: Mapping, batch_rows: int = 500_000) -> Iterator[SourceBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"cannot read Parquet: {exc}", path=str(path)) from exc
    names = pf.schema_arrow.names
    mapping.check(names, str(path))
    total = max(pf.metadata.num_rows, 1)
    offset = 0
    cols = mapping.source_columns()
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(
            pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("_offset"),
        )  # no _raw: the payload of a rejected row is rendered as JSON only when needed
        offset += frame.height
        rows, bad = decode(frame, mapping)
        yield SourceBatch(mapping.kind, rows, bad, offset * (os.path.getsize(path) // total))


def identity_mapping(kind: Kind, names: list[str]) -> Mapping:
    """Files written by `wh generate --out` use the internal field names."""
    from warehouse.ingest.decode import FIELDS

    cols = {f: f for f in FIELDS[kind] if f in names}
    return Mapping(kind, cols, ts_unit="ns")


def detect_parquet_kind(names: list[str], path: str | None = None) -> Kind:
    """Quotes or trades, from a Parquet file's column names (as `wh generate --out` writes them:
    the internal field names). Refuses a file that has both or neither shape."""
    from warehouse.ingest.decode import QUOTE_FIELDS, TRADE_FIELDS

    cols = set(names)
    quotes = {"bid", "ask"} <= cols
    trades = {"price", "size"} <= cols or "trade_id" in cols
    if quotes != trades:
        return Kind.QUOTE if quotes else Kind.TRADE
    shape = "both quote (bid, ask) and trade (price, size, trade_id)" if quotes else "neither quote nor trade"
    raise SourceError(
        f"{shape} columns (found: {', '.join(names) or 'none'}); say which with --kind quotes|trades "
        f"and map the columns with --map FIELD=COLUMN (fields: {', '.join(QUOTE_FIELDS)} | {', '.join(TRADE_FIELDS)})",
        path=path,
    )
