"""CSV framing: a file is cut into physical lines first, and each line is parsed on its own.

Why not hand the file to a CSV parser directly: one stray quote character (`,"BTCUSDT`)
opens a quoted field that a parser carries across every later newline, and the rest of
the file becomes one giant malformed row. Here a row can never span lines, so a bad line
costs that line only:

- a line that is not UTF-8 (a latin-1 line, one bad byte in a cell) → reject, raw shown
  with `\\xNN` escapes;
- a line longer than `max_line` bytes → reject with its first bytes and its length; it is
  skipped without ever being held whole in memory (a 50 MB "line" costs `max_line`);
- an odd number of quote characters, or a field count that differs from the header's → reject.

Clean blocks (the common case) go to pyarrow's C++ reader in one call; only a block with a
problem is split in Python. Files compressed with gzip or zstd (Tardis ships `.csv.gz`)
are read transparently, recognised by their magic bytes; a UTF-8 byte-order mark before
the header is dropped. Line numbers are physical and 1-based (the header is line 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from warehouse.errors import SourceError
from warehouse.records import bounded_raw

BLOCK_BYTES = 8 << 20
MAX_LINE_BYTES = 1 << 20
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))  # a cell may be as long as a line
BOM = b"\xef\xbb\xbf"
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


class ByteSource:
    """The file's bytes, decompressed when it is gzip or zstd; `consumed()` is the position in
    the file on disk (for progress bars)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pa.OSFile(str(path), "rb")
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot open: {exc}", path=str(path)) from exc
        head = self._file.read(4)
        self._file.seek(0)
        self.codec = next((c for magic, c in _MAGIC.items() if head.startswith(magic)), None)
        self._stream: Any = pa.CompressedInputStream(self._file, self.codec) if self.codec else self._file

    def read(self, n: int) -> bytes:
        try:
            return bytes(self._stream.read(n))
        except (OSError, pa.ArrowException) as exc:
            where = f"{self.codec} stream" if self.codec else "file"
            raise SourceError(
                f"the {where} is corrupt or truncated after byte {self._file.tell():,} of the file ({exc}); "
                "the lines before it are stored — re-import a complete copy (already stored rows are skipped)",
                path=str(self.path),
            ) from exc

    def consumed(self) -> int:
        return int(self._file.tell())

    def close(self) -> None:
        self._file.close()


@dataclass
class Block:
    first_line: int  # physical line number of the block's first line
    data: bytes  # whole lines, each ending with b"\n" (the file's last line may not)
    overlong: list[tuple[int, bytes, int]] = field(default_factory=list)  # (line, head, length)


def frames(src: ByteSource, first_line: int, *, block_bytes: int = BLOCK_BYTES,
           max_line: int = MAX_LINE_BYTES) -> Iterator[Block]:  # fmt: skip
    """Blocks of whole lines. A line longer than `max_line` is not kept: it is reported in
    `Block.overlong` (its first bytes and length) and skipped as it streams by."""
    pending = b""
    skipping: list[Any] | None = None  # [line, head, length] of an overlong line in progress
    overlong: list[tuple[int, bytes, int]] = []
    line = first_line
    while True:
        chunk = src.read(block_bytes)
        if not chunk:
            if skipping is not None:
                overlong.append((skipping[0], skipping[1], skipping[2]))
                line += 1
            if pending or overlong:
                yield Block(line, pending, overlong)
            return
        if skipping is not None:
            cut = chunk.find(b"\n")
            if cut < 0:
                skipping[2] += len(chunk)
                continue
            skipping[2] += cut
            overlong.append((skipping[0], skipping[1], skipping[2]))
            skipping = None
            line += 1
            chunk = chunk[cut + 1 :]
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
        else:
            yield Block(line, data[: cut + 1], overlong)
            overlong = []
            line += data.count(b"\n", 0, cut + 1)
            pending = data[cut + 1 :]
        if len(pending) > max_line:
            skipping, pending = [line, pending[:4096], len(pending)], b""


def read_header(path: Path, *, max_line: int = MAX_LINE_BYTES) -> list[str]:
    """The header's column names (BOM dropped, cells stripped); a clear error when the first
    line is empty, not UTF-8, or too long to be a header."""
    src = ByteSource(path)
    try:
        head = b""
        while b"\n" not in head and len(head) <= max_line:
            chunk = src.read(65536)
            if not chunk:
                break
            head += chunk
    finally:
        src.close()
    first = head.split(b"\n", 1)[0]
    if len(first) > max_line:
        raise SourceError(f"the first line is longer than {max_line:,} bytes: not a CSV header "
                          "(is this a CSV file?)", path=str(path))  # fmt: skip
    first = first.removeprefix(BOM).rstrip(b"\r")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("the header line is not UTF-8 text (is this a CSV file?)", path=str(path)) from None
    if not text.strip():
        raise SourceError("empty file (no header line)", path=str(path))
    try:
        cells = next(csv.reader([text]))
    except csv.Error as exc:
        raise SourceError(f"the header line is not CSV ({exc})", path=str(path)) from None
    return [c.strip() for c in cells]


_STRINGS = pl.String


def _lines(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets of each line's content (no \\n, no trailing \\r)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    ends = nl if data.endswith(b"\n") else np.append(nl, len(data))
    starts = np.concatenate(([0], nl[: len(ends) - 1] + 1)).astype(np.int64)
    ends = ends.astype(np.int64)
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - has_cr


def _per_line_counts(data: bytes, byte: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    pos = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == byte)
    return np.searchsorted(pos, ends) - np.searchsorted(pos, starts)


@dataclass
class ParsedBlock:
    rows: pl.DataFrame  # one String column per header cell + _offset (line number)
    rejects: pl.DataFrame  # _offset, rule, reason, _raw, exchange, symbol, timestamp


REJECT_COLUMNS = {"_offset": pl.Int64, "rule": pl.String, "reason": pl.String, "_raw": pl.String,
                  "exchange": pl.String, "symbol": pl.String, "timestamp": pl.Int64}  # fmt: skip


def _reject_frame(items: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"_offset": [i[0] for i in items], "rule": ["malformed"] * len(items), "reason": [i[1] for i in items],
         "_raw": [i[2] for i in items], "exchange": [None] * len(items), "symbol": [None] * len(items),
         "timestamp": [None] * len(items)},
        schema=REJECT_COLUMNS,
    )  # fmt: skip


def parse_block(block: Block, header: list[str], *, max_line: int = MAX_LINE_BYTES) -> ParsedBlock:
    """A block of lines → string columns + malformed rejects; every non-empty line ends up in
    exactly one of the two."""
    data, ncols = block.data, len(header)
    bad: list[tuple[int, str, str]] = [
        (line, f"line is {length:,} bytes, longer than the {max_line:,}-byte limit", bounded_raw(head, length))
        for line, head, length in block.overlong
    ]
    starts, ends = _lines(data)
    numbers = block.first_line + np.arange(len(starts), dtype=np.int64)
    keep = ends > starts  # blank lines are not rows
    problem: dict[int, str] = {}
    for i in np.flatnonzero(keep & (ends - starts > max_line)):
        problem[int(i)] = f"line is {int(ends[i] - starts[i]):,} bytes, longer than the {max_line:,}-byte limit"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for i in np.flatnonzero(keep):
            try:
                data[starts[i] : ends[i]].decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = data[starts[i] + exc.start]
                problem.setdefault(int(i), f"line is not valid UTF-8 (byte 0x{byte:02x} at column {exc.start + 1}); "
                                           f"raw shows it as \\x{byte:02x}")  # fmt: skip
    quoted = b'"' in data
    if quoted:
        odd = _per_line_counts(data, 34, starts, ends) % 2 == 1
        for i in np.flatnonzero(keep & odd):
            problem.setdefault(int(i), "unbalanced quote character: a quoted field never closes on this line")
    table = None
    for attempt in range(2):
        for k, why in problem.items():
            if keep[k]:
                keep[k] = False
                bad.append((int(numbers[k]), why, bounded_raw(data[starts[k] : ends[k]])))
        good = np.flatnonzero(keep)
        if good.size == 0:
            rows = pl.DataFrame(schema={**{c: _STRINGS for c in header}, "_offset": pl.Int64})
            return ParsedBlock(rows, _reject_frame(sorted(bad)))
        clean = data if good.size == len(starts) else b"\n".join(data[starts[i] : ends[i]] for i in good)
        table = _arrow_parse(clean, header, quoted)
        if table is not None or quoted or attempt:
            break
        # the fast reader found rows with the wrong field count: find them (only dirty blocks pay)
        nfields = _per_line_counts(data, 44, starts, ends) + 1
        for i in np.flatnonzero(keep & (nfields != ncols)):
            problem.setdefault(int(i), f"line has {int(nfields[i])} field(s), the header has {ncols}")
    if table is None or table.num_rows != good.size:  # a quoted field the fast reader reads differently
        table, extra = _python_parse([data[starts[i] : ends[i]] for i in good], header)
        if extra:
            drop = {j for j, _ in extra}
            bad += [
                (int(numbers[good[j]]), why, bounded_raw(data[starts[good[j]] : ends[good[j]]])) for j, why in extra
            ]
            good = np.array([g for j, g in enumerate(good) if j not in drop], dtype=np.int64)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.Series("_offset", numbers[good], dtype=pl.Int64))
    return ParsedBlock(frame, _reject_frame(sorted(bad)))


def _arrow_parse(clean: bytes, header: list[str], quoted: bool) -> pa.Table | None:
    invalid: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.text)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(clean),
            read_options=pacsv.ReadOptions(column_names=header, use_threads=False, block_size=BLOCK_BYTES + (1 << 20)),
            parse_options=pacsv.ParseOptions(
                quote_char='"' if quoted else False, newlines_in_values=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                null_values=[""],  # "NaN" is a value (rejected as non_finite), not a missing cell
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid:
        return None
    return None if invalid else table


def _python_parse(lines: list[bytes], header: list[str]) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The slow, exact path for a block with quoting the fast reader did not take line by line."""
    cols: list[list[str | None]] = [[] for _ in header]
    bad: list[tuple[int, str]] = []
    for j, line in enumerate(lines):
        try:
            cells = next(csv.reader([line.decode("utf-8")], strict=True))
        except csv.Error as exc:
            bad.append((j, f"cannot parse the line as CSV: {exc}"))
            continue
        if len(cells) != len(header):
            bad.append((j, f"line has {len(cells)} field(s), the header has {len(header)}"))
            continue
        for col, cell in zip(cols, cells, strict=True):
            col.append(cell if cell != "" else None)
    return pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, cols, strict=True)}), bad
