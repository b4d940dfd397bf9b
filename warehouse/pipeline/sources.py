"""A tick file as source batches, the way a pipeline spec (or `wh import`'s options) says to
read it: Tardis CSV (kind told by its header), mapped CSV, or Parquet (wh's own files by
their columns, others by a mapping). `wh import` and Dagster's landing assets read files
through this one function."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from warehouse.pipeline.spec import FileSource
from warehouse.records import Kind, SourceBatch


def file_batches(path: Path, fmt: str, *, kind: Kind | None = None, columns: Mapping[str, str] | None = None,
                 constants: Mapping[str, str] | None = None, ts_unit: str = "us", ts_format: str | None = None,
                 asset_class: str = "crypto") -> Iterator[SourceBatch]:  # fmt: skip
    """Batches of `path` (`fmt`: tardis, csv or parquet)."""
    from warehouse.ingest.decode import Mapping as FieldMapping
    from warehouse.ingest.files import (
        detect_parquet_kind,
        detect_tardis_kind,
        identity_mapping,
        iter_csv,
        iter_parquet,
        parquet_columns,
        tardis_mapping,
    )

    cols, consts = dict(columns or {}), dict(constants or {})
    if fmt == "tardis":
        return iter_csv(path, tardis_mapping(detect_tardis_kind(path), asset_class))
    k = kind or Kind.QUOTE
    if fmt == "parquet" and not cols:
        names = parquet_columns(path)[0]
        if kind is None:  # wh generate --out writes quotes.parquet and trades.parquet
            k = detect_parquet_kind(names, str(path))
        m = identity_mapping(k, names)
        m.constants.update(consts)
        return iter_parquet(path, m)
    m = FieldMapping(k, cols, consts, ts_unit=ts_unit, ts_format=ts_format)
    return iter_csv(path, m) if fmt == "csv" else iter_parquet(path, m)


def spec_file_batches(src: FileSource, path: Path) -> Iterator[SourceBatch]:
    """`file_batches` with the options of a spec's `source.files`."""
    return file_batches(path, src.format, kind=Kind.QUOTE if src.kind == "quotes" else Kind.TRADE if src.kind else None,
                        columns=src.map, constants=src.const, ts_unit=src.ts_unit, ts_format=src.ts_format,
                        asset_class=src.asset_class)  # fmt: skip
