"""File sources without reading a file: what a Parquet file's columns say it holds."""

from __future__ import annotations

import pytest


def test_detect_parquet_kind() -> None:
    from warehouse.errors import SourceError
    from warehouse.ingest.decode import QUOTE_FIELDS, TRADE_FIELDS
    from warehouse.ingest.files import detect_parquet_kind
    from warehouse.records import Kind

    assert detect_parquet_kind(list(QUOTE_FIELDS)) == Kind.QUOTE
    assert detect_parquet_kind(list(TRADE_FIELDS)) == Kind.TRADE
    assert detect_parquet_kind(["timestamp", "symbol", "price", "size"]) == Kind.TRADE
    with pytest.raises(SourceError, match="--kind"):
        detect_parquet_kind(["a", "b"])
    with pytest.raises(SourceError, match="--kind"):
        detect_parquet_kind([*QUOTE_FIELDS, "trade_id", "price", "size"])  # both: ambiguous
