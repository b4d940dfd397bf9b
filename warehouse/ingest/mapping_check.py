"""Checks of a column mapping made once, before any row is read.

The decoder meets a mapping row by row: a `--ts-format` that cannot give a time made every
row a `malformed` reject (or a polars error mid-file), and a `--const seq=abc` crashed the
decoder's cast. Both are whole-import mistakes, so they are refused up front as SourceError,
naming the option to fix.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from warehouse.errors import SourceError
from warehouse.ingest.decode import FIELDS, TIME_FIELDS, Mapping

_PROBE = datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def check_ts_format(fmt: str) -> None:
    """A strftime format polars can both write and read back to the same date.

    Round trip: a known instant formatted with `fmt` must parse back to that day. An invalid
    directive (`%Q`, a lone `%`) fails the formatting; a format without a date (`%H:%M`)
    parses to a wrong day (polars gave year 1754) — neither can stamp a tick.
    """
    probe = pl.Series([_PROBE])
    try:
        text = probe.dt.to_string(fmt)
        back = text.str.to_datetime(format=fmt, time_unit="ns", time_zone="UTC", strict=False)
    except pl.exceptions.PolarsError:
        raise SourceError(f"--ts-format {fmt!r} is not a valid strftime format (e.g. '%Y-%m-%d %H:%M:%S%.f')") from None
    got = back[0]
    if got is None or got.date() != _PROBE.date():
        raise SourceError(f"--ts-format {fmt!r} cannot give a date and time (it needs the year, month and day, "
                          "e.g. '%Y-%m-%d %H:%M:%S')")  # fmt: skip


def check_constants(m: Mapping) -> None:
    """Every `--const FIELD=VALUE` must be a value of the field's type (and not empty)."""
    fields = FIELDS[m.kind]
    for name, value in m.constants.items():
        dtype = fields[name]
        hint = f"--const {name}={value!r}"
        if value.strip() == "":
            raise SourceError(f"{hint}: empty; give a value or map a column with --map {name}=COLUMN")
        if dtype == pl.String():
            continue
        what = "integer nanoseconds since the epoch" if name in TIME_FIELDS else f"a finite {dtype} value"
        try:
            cast = pl.Series([value]).cast(dtype, strict=True)  # as the decoder casts it
        except pl.exceptions.PolarsError:
            raise SourceError(f"{hint}: {name} must be {what}") from None
        if dtype.is_float() and not cast.is_finite().all():
            raise SourceError(f"{hint}: {name} must be {what}")


def check_mapping(m: Mapping) -> None:
    """All of the above; raises SourceError."""
    if m.ts_format is not None:
        check_ts_format(m.ts_format)
    check_constants(m)
