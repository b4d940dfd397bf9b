from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- the Arrow encoding: many ticks of one instrument per message -----------------------------------


def _arrow(n: int, per: int = 250, seed: int = 3) -> tuple[list[bytes], list[str], int]:
    from warehouse.ingest.kafka.producer import encode_arrow

    values, kinds, ticks = [], [], 0
    for b in SyntheticFeed(ticks=n, seed=seed).batches():
        rows = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        for _, value, k in encode_arrow(rows, b.kind, per):
            values.append(value)
            kinds.append(str(b.kind))
            ticks += k
    return values, kinds, ticks


def _decode_kinds(values: list[bytes | None], kinds: list[str | None]) -> tuple[int, pl.DataFrame]:
    n = len(values)
    batches = decode_messages("t", values, np.zeros(n, dtype=np.int32), np.arange(n), kinds=kinds)
    return sum(b.rows.height for b in batches), pl.concat([b.rejects for b in batches], how="diagonal_relaxed")


def test_arrow_messages_decode_to_the_same_rows_as_json() -> None:
    values, kinds, ticks = _arrow(3_000)
    assert len(values) < ticks == 3_000
    n = len(values)
    arrow = decode_messages("t", values, np.zeros(n, dtype=np.int32), np.arange(n), kinds=kinds)  # type: ignore[arg-type]
    json_ = _decode(_messages(3_000))
    for b in arrow:
        want = json_[b.kind][0].drop([c for c in json_[b.kind][0].columns if c.startswith("_")])
        got = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        assert got.sort(want.columns).equals(want.sort(want.columns)), b.kind


def test_a_bad_arrow_message_is_one_reject_and_bad_rows_keep_their_own_key() -> None:
    import pyarrow as pa

    values, kinds, ticks = _arrow(2_000)
    cut = values[0][: len(values[0]) // 2]
    missing = pa.BufferOutputStream()
    t = pa.table({"timestamp": [1], "symbol": ["X"]})
    with pa.ipc.new_stream(missing, t.schema) as w:
        w.write_table(t)
    wrong = pa.BufferOutputStream()
    t2 = pa.table({"timestamp": ["soon"], "received_at": [1], "exchange": ["e"], "symbol": ["X"],
                   "asset_class": ["crypto"], "bid": [1.0], "ask": [2.0]})  # fmt: skip
    with pa.ipc.new_stream(wrong, t2.schema) as w:
        w.write_table(t2)
    extra = [cut, missing.getvalue().to_pybytes(), wrong.getvalue().to_pybytes(), b"{}", values[1]]
    stored, rejects = _decode_kinds([*values, *extra], [*kinds, "quote", "quote", "quote", "", "fx"])  # type: ignore[list-item]
    by_offset = dict(zip(rejects["_offset"].to_list(), rejects["reason"].to_list(), strict=True))
    n = len(values)
    assert "not a readable Arrow IPC stream" in by_offset[n]
    assert "lacks field(s) exchange, asset_class, bid, ask" in by_offset[n + 1]  # received_at is optional
    assert "timestamp is string, not a timestamp or integer ns" in by_offset[n + 2]
    assert "without a wh-type header" in by_offset[n + 3] and "without a wh-type header" in by_offset[n + 4]
    assert stored + len(rejects) - 5 == ticks  # every other row decoded, or a row reject of its own


def test_json_and_arrow_messages_mix_in_one_batch() -> None:
    values, kinds, ticks = _arrow(1_000, seed=5)
    json_ = _messages(500)
    stored, rejects = _decode_kinds([*json_, *values, b"{bad"], [*([None] * len(json_)), *kinds, None])  # type: ignore[list-item]
    assert stored == ticks + 500 and len(rejects) == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_said_to_be_arrow_are_one_reject(data: bytes) -> None:
    stored, rejects = _decode_kinds([data], ["trade"])
    assert stored == 0 and len(rejects) <= 1  # an empty but valid stream is possible, never an exception


def _ipc(table) -> bytes:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_hostile_arrow_messages_are_one_reject_each() -> None:
    """Crafted IPC payloads must not crash the consumer (a crash re-reads the same message
    forever): duplicate names, invalid UTF-8 inside, declared rows far beyond the cap."""
    import pyarrow as pa

    base = {"timestamp": [1], "received_at": [1], "exchange": ["e"], "symbol": ["X"], "asset_class": ["crypto"],
            "bid": [1.0], "ask": [2.0]}  # fmt: skip
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["timestamp", "timestamp"])
    bad_utf8 = pa.table({**base, "symbol": pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(
        np.array([0, 2], np.int32).tobytes()), pa.py_buffer(b"\xff\xfe")])})  # fmt: skip
    many = pa.table({k: v * 100_001 for k, v in base.items()})
    nulls = pa.table({**base, "bid": pa.nulls(1)})
    values = [_ipc(dup), _ipc(bad_utf8), _ipc(many), _ipc(nulls)]
    stored, rejects = _decode_kinds(values, ["quote"] * 4)  # type: ignore[arg-type]
    reasons = dict(zip(rejects["_offset"].to_list(), rejects["reason"].to_list(), strict=True))
    assert stored == 0 and len(reasons) == 4
    assert "names a field twice" in reasons[0] and "not a readable Arrow IPC stream" in reasons[1]
    assert "100,001 rows" in reasons[2] and "lacks field(s) bid" in reasons[3]


def test_arrow_timestamps_of_any_unit_become_ns() -> None:
    import pyarrow as pa

    t = pa.table({"timestamp": pa.array([1_700_000_000_000], pa.timestamp("ms", "UTC")),
                  "received_at": pa.array([1_700_000_000_000_001], pa.timestamp("us")), "exchange": ["e"],
                  "symbol": ["X"], "asset_class": ["crypto"], "bid": [1.0], "ask": [2.0]})  # fmt: skip
    n = 1
    (batch,) = decode_messages("t", [_ipc(t)], np.zeros(n, dtype=np.int32), np.arange(n), kinds=["quote"])
    assert batch.rows.select("timestamp", "received_at").row(0) == (1_700_000_000_000 * 10**6,
                                                                     1_700_000_000_000_001 * 1_000)  # fmt: skip


def test_json_and_arrow_rows_of_one_batch_are_sanitized_in_partition_order() -> None:
    """A JSON tick at T (offset 0) and an Arrow tick at T + 10 s (offset 1), one instrument: the
    same verdicts whether they arrive in one batch or two (no out_of_order from the encoding)."""
    import json

    import pyarrow as pa

    from warehouse.ingest.kafka.producer import encode_arrow
    from warehouse.pipeline.step import BatchStep

    t0 = 1_700_000_000 * 10**9
    tick = {"timestamp": t0, "received_at": t0, "exchange": "binance", "symbol": "BTCUSDT", "asset_class": "crypto",
            "bid": 100.0, "ask": 100.5, "bid_size": 1.0, "ask_size": 1.0, "seq": 1}  # fmt: skip
    later = pl.DataFrame([{**tick, "timestamp": t0 + 10**10, "received_at": t0 + 10**10, "seq": 2}])
    ((_, arrow, _),) = encode_arrow(later, Kind.QUOTE, 1000)
    values, kinds = [json.dumps({"type": "quote", **tick}).encode(), arrow], [None, "quote"]

    def verdicts(groups: list[list[int]]) -> list[str]:
        step, rules = BatchStep("kafka:t"), []
        for idx in groups:
            out = decode_messages("t", [values[i] for i in idx], np.zeros(len(idx), np.int32),
                                  np.array(idx, dtype=np.int64), kinds=[kinds[i] for i in idx])  # fmt: skip
            rules += (
                step(out).batch.get("rejects", pa.table({"rule": pa.array([], pa.string())})).column("rule").to_pylist()
            )
        return rules

    assert verdicts([[0, 1]]) == verdicts([[0], [1]]) == []
