"""A column mapping is checked before any row is read: a timestamp format that parses nothing
(every row a reject, or polars' error) and a constant that is not of its field's type."""

from __future__ import annotations

import pytest

from warehouse.errors import SourceError
from warehouse.ingest.decode import Mapping
from warehouse.ingest.mapping_check import check_mapping
from warehouse.records import Kind


@pytest.mark.parametrize("fmt", ["%Q", "%", "%Y-%", "%E", "%H:%M", "%M:%S"])
def test_a_timestamp_format_that_cannot_give_a_time_is_refused(fmt: str) -> None:
    with pytest.raises(SourceError, match="--ts-format"):
        check_mapping(Mapping(Kind.QUOTE, {"timestamp": "ts"}, ts_format=fmt))


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%d/%m/%Y %H:%M:%S%.3f", "%s", "%Y%m%d"])
def test_good_formats_pass(fmt: str) -> None:
    check_mapping(Mapping(Kind.QUOTE, {"timestamp": "ts"}, ts_format=fmt))


@pytest.mark.parametrize(("field", "value"), [("seq", "abc"), ("seq", "1.5"), ("bid", "x"), ("bid", "nan"), ("seq", " 7"),
                                              ("timestamp", "2020-01-01"), ("ask_size", "")])  # fmt: skip
def test_constants_must_have_their_fields_type(field: str, value: str) -> None:
    with pytest.raises(SourceError, match=f"--const {field}="):
        check_mapping(Mapping(Kind.QUOTE, {}, {field: value}))


def test_good_constants_pass() -> None:
    check_mapping(Mapping(Kind.TRADE, {}, {"seq": "7", "price": "1.5", "symbol": "BTC", "exchange": "x",
                                          "timestamp": "1582329601096000"}))  # fmt: skip
