from __future__ import annotations

import numpy as np
import polars as pl

from warehouse.ingest.kafka import decode_messages, encode
from warehouse.ingest.kafka.wire import _read_wire
from warehouse.ingest.synthetic import SyntheticFeed
from warehouse.records import Kind

BAD = [b"{not json", b'{"type":"quote","bid":NaN}', b"", b"[1,2,3]", b'{"type":"quote","bid":[1]}',
       b'{"type":"quote","timestamp":"x"}', b'{"type":"fx"}']  # fmt: skip


def _messages(n: int) -> list[bytes]:
    out: list[bytes] = []
    for b in SyntheticFeed(ticks=n, seed=3).batches():
        rows = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        out += [v.encode() for v in encode(rows, b.kind).to_list()]
    return out


def _decode(values: list[bytes | None]) -> dict[Kind, tuple[pl.DataFrame, pl.DataFrame]]:
    n = len(values)
    batches = decode_messages("t", values, np.zeros(n, dtype=np.int32), np.arange(n))
    out: dict[Kind, tuple[pl.DataFrame, pl.DataFrame]] = {}
    for b in batches:
        rows, rej = out.get(b.kind, (None, None))
        out[b.kind] = (
            b.rows if rows is None else pl.concat([rows, b.rows], how="diagonal_relaxed"),
            b.rejects if rej is None else pl.concat([rej, b.rejects], how="diagonal_relaxed"),
        )
    return out


def test_fast_path_reads_a_clean_batch() -> None:
    msgs = _messages(3_000)
    assert _read_wire(msgs) is not None
    got = _decode(msgs)
    assert got[Kind.QUOTE][0].height + got[Kind.TRADE][0].height == 3_000
    assert got[Kind.QUOTE][1].height == got[Kind.TRADE][1].height == 0


def test_bad_messages_are_isolated_and_the_rest_decoded_identically() -> None:
    msgs = _messages(3_000)
    clean = _decode(msgs)
    mixed: list[bytes | None] = list(msgs)
    positions = [5, 700, 1500, 2999]
    for i, p in enumerate(positions):
        mixed.insert(p + i, BAD[i % len(BAD)])
    mixed.insert(1000, None)
    got = _decode(mixed)
    rejects = pl.concat([got[k][1] for k in got], how="diagonal_relaxed")
    assert rejects.height == len(positions) + 1
    assert set(rejects["rule"]) == {"malformed"}
    for kind in (Kind.QUOTE, Kind.TRADE):
        a = clean[kind][0].drop(["_offset", "_raw", "_source"])
        b = got[kind][0].drop(["_offset", "_raw", "_source"])
        assert a.equals(b)
    # raw bytes and offsets are kept for every reject
    assert all(r is not None for r in rejects["_raw"])
    assert rejects["_source"].to_list() == ["kafka:t/0"] * rejects.height


def test_every_bad_sample_is_a_malformed_reject() -> None:
    got = _decode(list(BAD))
    rejects = pl.concat([got[k][1] for k in got], how="diagonal_relaxed")
    assert sorted(rejects["_offset"].to_list()) == list(range(len(BAD)))
