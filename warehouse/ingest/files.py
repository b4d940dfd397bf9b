"""File sources: Tardis.dev CSV, generic CSV and Parquet with a column mapping.

All stream: CSV in blocks of whole lines (warehouse/ingest/lines.py: one bad line — a stray
quote, bad UTF-8, the wrong field count, 50 MB without a newline — costs that line only;
gzip/zstd read transparently), Parquet row group by row group (an unreadable row group is
one reject naming its rows, the next ones are still read). CSV cells are read as text and
decoded by `decode` so that one bad cell rejects one row, not the file.
`_offset` is the 1-based physical line number for CSV, the row ordinal for Parquet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import SourceError
from warehouse.ingest.decode import Mapping, decode, raw_csv
from warehouse.ingest.lines import REJECT_COLUMNS, Block, ByteSource, frames, parse_block, read_header
from warehouse.records import Kind, SourceBatch

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


def detect_tardis_kind(path: Path) -> Kind:
    header = read_header(path)
    if set(TARDIS_QUOTES) <= set(header):
        return Kind.QUOTE
    if set(TARDIS_TRADES) <= set(header):
        return Kind.TRADE
    looks_quotes = len(set(header) & set(TARDIS_QUOTES)) >= len(set(header) & set(TARDIS_TRADES))
    expected = TARDIS_QUOTES if looks_quotes else TARDIS_TRADES
    missing = [c for c in expected if c not in header]
    raise SourceError(
        f"not a Tardis quotes or trades file: missing column(s) {', '.join(missing)} (header: {','.join(header)})",
        path=str(path),
    )


def iter_csv(path: Path, mapping: Mapping) -> Iterator[SourceBatch]:
    """Stream a CSV (plain, gzip or zstd) in blocks of whole lines; a bad line is a reject of
    that line only (see warehouse/ingest/lines.py), the rest of the file goes on."""
    header = read_header(path)
    mapping.check(header, str(path))
    src = ByteSource(path)
    size = max(os.path.getsize(path), 1)
    try:
        first = True
        for block in frames(src, 1):
            if first:  # the header line
                cut = block.data.find(b"\n")
                block = Block(2, block.data[cut + 1 :] if cut >= 0 else b"", block.overlong)
                first = False
            parsed = parse_block(block, header)
            frame = parsed.rows.with_columns(raw_csv(header).alias("_raw"))
            rows, bad = decode(frame, mapping)
            yield SourceBatch(mapping.kind, rows, pl.concat([parsed.rejects, bad]), min(size, src.consumed()))
    finally:
        src.close()


def _empty_rows(mapping: Mapping) -> pl.DataFrame:
    from warehouse.ingest.decode import FIELDS

    schema = {"_offset": pl.Int64(), "_raw": pl.String(), **FIELDS[mapping.kind]}
    return pl.DataFrame(schema=schema)


def parquet_columns(path: Path) -> tuple[list[str], int]:
    """(column names, row count) of a Parquet file; SourceError when it cannot be opened."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"cannot read Parquet (corrupt or truncated file?): {exc}", path=str(path)) from exc
    return pf.schema_arrow.names, pf.metadata.num_rows


def iter_parquet(path: Path, mapping: Mapping, batch_rows: int = 500_000) -> Iterator[SourceBatch]:
    """Row group by row group; a row group that cannot be read (corrupt page, truncated
    file) becomes one `malformed` reject naming its rows, and the next row groups are read."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"cannot read Parquet (corrupt or truncated file?): {exc}", path=str(path)) from exc
    names = pf.schema_arrow.names
    mapping.check(names, str(path))
    size = os.path.getsize(path)
    meta = pf.metadata
    total = max(meta.num_rows, 1)
    cols = mapping.source_columns()
    offset = 0
    for group in range(meta.num_row_groups):
        end = offset + meta.row_group(group).num_rows
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=cols):
                frame = pl.from_arrow(pa.Table.from_batches([batch]))
                assert isinstance(frame, pl.DataFrame)
                frame = frame.with_columns(
                    pl.int_range(offset, offset + frame.height, dtype=pl.Int64).alias("_offset"),
                )  # no _raw: the payload of a rejected row is rendered as JSON only when needed
                offset += frame.height
                rows, bad = decode(frame, mapping)
                yield SourceBatch(mapping.kind, rows, bad, offset * size // total)
        except (pa.ArrowException, OSError) as exc:
            lost = end - offset
            reason = (f"row group {group} unreadable ({exc}): rows {offset:,}–{end - 1:,} "
                      f"({lost:,} rows) not imported; the other row groups are")  # fmt: skip
            rejects = pl.DataFrame(
                {"_offset": [offset], "rule": ["malformed"], "reason": [reason], "_raw": [""],
                 "exchange": [None], "symbol": [None], "timestamp": [None]},
                schema=REJECT_COLUMNS,
            )  # fmt: skip
            offset = end
            yield SourceBatch(mapping.kind, _empty_rows(mapping), rejects, offset * size // total)
        offset = max(offset, end)


CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".csv.zstd", ".txt", ".txt.gz")


def expand_paths(paths: list[Path], fmt: str) -> list[Path]:
    """Files to import: a directory stands for its files of the format (sorted by name, not
    recursive); a missing path or a directory without such files is a SourceError."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            suffixes = (".parquet",) if fmt == "parquet" else CSV_SUFFIXES
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and p.name.lower().endswith(suffixes))  # fmt: skip
            if not found:
                raise SourceError(f"is a directory with no {' / '.join(suffixes)} files", path=str(path))
            out += found
        elif path.is_file():
            out.append(path)
        elif path.exists():
            raise SourceError("not a regular file", path=str(path))
        else:
            raise SourceError("no such file or directory", path=str(path))
    return out


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
