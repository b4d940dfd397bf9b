"""Hostile input at the decoding layer: every Kafka message and every CSV line either
decodes or becomes a reject of its own; nothing raises, nothing else is lost.

The corpus (tests/corpus/) holds the cases found so far; the property tests throw
arbitrary bytes at the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse.ingest.files import iter_csv, tardis_mapping
from warehouse.ingest.kafka import decode_messages, encode
from warehouse.ingest.lines import Block, ByteSource, frames, parse_block
from warehouse.ingest.synthetic import SyntheticFeed
from warehouse.pipeline import to_write_batch
from warehouse.records import RAW_LIMIT, Kind
from warehouse.sanitize import Sanitizer

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MESSAGES = sorted((CORPUS / "messages").glob("*.bin"))


def _valid_messages(n: int, seed: int = 3) -> list[bytes]:
    out: list[bytes] = []
    for b in SyntheticFeed(ticks=n, seed=seed).batches():
        rows = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        out += [v.encode() for v in encode(rows, b.kind).to_list()]
    return out[:n]


def _through(values: list[bytes | None], received: np.ndarray | None = None) -> tuple[int, pl.DataFrame]:
    """decode → sanitize → write batch, as the consumer does: (ticks stored, rejects)."""
    n = len(values)
    stored, rejects = 0, []
    for b in decode_messages("t", values, np.zeros(n, dtype=np.int32), np.arange(n), received):
        result = Sanitizer(b.kind).process(b.rows)
        rej = pl.concat([b.rejects, result.rejects], how="diagonal_relaxed")
        wb = to_write_batch(b.kind, result.accepted, rej, result.gaps, "kafka:t")
        stored += sum(wb[t].num_rows for t in ("market_ticks", "trades") if t in wb)
        rejects.append(pl.from_arrow(wb["rejects"]))
    return stored, pl.concat(rejects) if rejects else pl.DataFrame()


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.name)
def test_corpus_message_is_stored_or_rejected_alone(path: Path) -> None:
    valid = _valid_messages(200)
    hostile = path.read_bytes()
    stored, rejects = _through([*valid[:100], hostile, *valid[100:]])
    if path.name.startswith("reject_"):
        assert stored == 200
        assert rejects.height == 1 and rejects["source_offset"][0] == 100, rejects
        assert rejects["rule"][0] in ("malformed", "non_finite")
        assert len(rejects["raw"][0]) <= RAW_LIMIT + 40
    else:
        assert stored == 201 and rejects.height == 0, rejects


def test_missing_receipt_time_takes_the_kafka_timestamp() -> None:
    msg = json.loads((CORPUS / "messages" / "accept_no_received_at.bin").read_bytes())
    values = [json.dumps(msg).encode(), json.dumps(dict(msg, seq=msg["seq"] + 1)).encode()]
    kafka_ts = np.array([1_700_000_000_123 * 1_000_000, -1], dtype=np.int64)  # second: no Kafka timestamp
    [batch] = decode_messages("t", values, np.zeros(2, dtype=np.int32), np.arange(2), kafka_ts)
    got = batch.rows.sort("_offset")["received_at"].to_list()
    assert got == [1_700_000_000_123 * 1_000_000, msg["timestamp"]]  # no Kafka timestamp: event time


@pytest.mark.property
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20), st.integers(0, 60))
def test_arbitrary_bytes_as_messages_never_stop_the_batch(junk: list[bytes], at: int) -> None:
    """Property: arbitrary byte strings mixed into a valid batch end as rejects (or, if one
    happens to be a valid tick, as a tick); every valid message is stored."""
    valid = _valid_messages(60, seed=11)
    values: list[bytes | None] = [*valid[:at], *junk, *valid[at:]]
    stored, rejects = _through(values)
    assert stored + rejects.height == len(values)
    assert stored >= 60
    offsets = set(rejects["source_offset"].to_list()) if rejects.height else set()
    assert offsets.isdisjoint(range(at)) and offsets.isdisjoint(range(at + len(junk), len(values)))


_HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"


def _valid_lines(n: int) -> list[bytes]:
    return [f"binance-futures,BTCUSDT,{1582329601096000 + i * 1000},{1582329601196000 + i * 1000},"
            f"0.84,9682,9681.9,0.67".encode() for i in range(n)]  # fmt: skip


_JUNK_LINE = st.binary(max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b)


@pytest.mark.property
@given(st.lists(_JUNK_LINE, min_size=1, max_size=15), st.randoms(use_true_random=False))
def test_arbitrary_lines_in_a_csv_cost_only_themselves(junk: list[bytes], rnd) -> None:  # type: ignore[no-untyped-def]
    """Property: arbitrary lines (quotes, bad UTF-8, commas, control bytes) inserted into a
    valid Tardis file: the count of valid rows decoded is exact, and every junk line is
    either a reject naming its own line number or (if it happens to be a valid row) a row."""
    import tempfile

    valid = _valid_lines(50)
    lines = list(valid)
    for j in junk:
        lines.insert(rnd.randint(0, len(lines)), b"#JUNK#" + j)  # the marker keeps it out of the valid set
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.csv"
        path.write_bytes(("\n".join([_HEADER]) + "\n").encode() + b"\n".join(lines) + b"\n")
        rows, rejects = [], []
        for b in iter_csv(path, tardis_mapping(Kind.QUOTE)):
            rows.append(b.rows)
            rejects.append(b.rejects)
    got = pl.concat(rows, how="diagonal_relaxed")
    rej = pl.concat(rejects, how="diagonal_relaxed")
    junk_lines = {i + 2 for i, line in enumerate(lines) if line.startswith(b"#JUNK#")}
    valid_lines = {i + 2 for i, line in enumerate(lines) if not line.startswith(b"#JUNK#")}
    assert sorted(got["_offset"].to_list()) == sorted(valid_lines)  # every valid row, exactly once
    assert sorted(rej["_offset"].to_list()) == sorted(junk_lines)  # each junk line: one reject of its own
    assert all(len(r) <= RAW_LIMIT + 40 for r in rej["_raw"].to_list())


def test_overlong_lines_are_skipped_in_bounded_memory(tmp_path: Path) -> None:
    """A 50 MB line is read in blocks and never held whole: the framer keeps its head only."""
    path = tmp_path / "long.csv"
    with path.open("wb") as f:
        f.write(_HEADER.encode() + b"\n" + b"\n".join(_valid_lines(3)) + b"\n")
        f.write(b"x" * (50 << 20) + b"\n")
        f.write(b"\n".join(_valid_lines(5)[3:]) + b"\n")
    src = ByteSource(path)
    try:
        blocks = list(frames(src, 1, block_bytes=1 << 20, max_line=1 << 20))
    finally:
        src.close()
    assert max(len(b.data) for b in blocks) <= 3 << 20
    [(line, head, length)] = [o for b in blocks for o in b.overlong]
    assert (line, length, len(head)) == (5, 50 << 20, 4096)
    parsed = [parse_block(b, _HEADER.split(","), max_line=1 << 20) for b in blocks[1:]]
    first = parse_block(Block(2, blocks[0].data.split(b"\n", 1)[1], blocks[0].overlong), _HEADER.split(","))
    rows = pl.concat([first.rows, *(p.rows for p in parsed)])
    rejects = pl.concat([first.rejects, *(p.rejects for p in parsed)])
    assert rows["_offset"].to_list() == [2, 3, 4, 6, 7]
    assert rejects["_offset"].to_list() == [5] and "52,428,800 bytes" in rejects["reason"][0]
