from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.errors import MissingColumnError, SanitizeError, SourceError
from warehouse.ingest.files import detect_tardis_kind, iter_csv, tardis_mapping
from warehouse.ingest.synthetic import FaultRates, SyntheticFeed, universe
from warehouse.records import ASSET_CLASSES, STORAGE_ORDER, TABLE_FOR_KIND, Kind
from warehouse.sanitize import Policy, SanitizeConfig, Sanitizer


def _run_feed(seed: int, ticks: int = 120_000, chunk: int = 25_000):
    feed = SyntheticFeed(
        ticks=ticks, seed=seed, chunk=chunk, faults=FaultRates(bad=0.01, duplicate=0.01, out_of_order=0.01, gap=0.005)
    )
    sans = {k: Sanitizer(k) for k in Kind}
    expected, got, gaps_seen, seqs = [], [], [], []
    for b in feed.batches():
        r = sans[b.kind].process(b.rows)
        expected.append(b.rows.select("_offset", "_expected", pl.lit(str(b.kind)).alias("kind")))
        got.append(r.rejects.select("_offset", "rule"))
        gaps_seen.append(r.gaps.with_columns(pl.lit(str(b.kind)).alias("kind")))
        seqs.append(b.rows.select("exchange", "symbol", "seq", pl.lit(str(b.kind)).alias("kind"), "_expected", "_gap"))
    return pl.concat(expected), pl.concat(got), pl.concat(gaps_seen), pl.concat(seqs)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_injected_faults_are_caught_with_their_rule_and_nothing_else(seed: int) -> None:
    expected, got, _gaps, _seqs = _run_feed(seed)
    joined = expected.join(got, on="_offset", how="left")
    bad = expected.filter(pl.col("_expected").is_not_null())
    # the feed really injected every kind of fault
    assert set(bad["_expected"].unique()) >= {
        "non_finite",
        "non_positive",
        "crossed_book",
        "unknown_asset_class",
        "timestamp_window",
        "spike",
        "duplicate",
        "out_of_order",
    }
    mismatched = joined.filter(pl.col("_expected").ne_missing(pl.col("rule")))
    assert mismatched.height == 0, mismatched.head(10)
    # no clean tick rejected; every bad tick rejected exactly once
    assert got.height == bad.height
    assert got["_offset"].n_unique() == got.height


@pytest.mark.parametrize("seed", [1, 5])
def test_every_injected_gap_yields_one_gap_event(seed: int) -> None:
    _, _, gaps, seqs = _run_feed(seed)
    injected = (
        seqs.filter(pl.col("_gap") > 0)
        .select("kind", "exchange", "symbol", (pl.col("seq") - pl.col("_gap")).alias("from_seq"),
                (pl.col("seq") - 1).alias("to_seq"), pl.col("_gap").alias("missing"))
        .sort(["kind", "exchange", "symbol", "from_seq"])
    )  # fmt: skip
    assert injected.height > 50
    got = gaps.select("kind", "exchange", "symbol", "from_seq", "to_seq", "missing").sort(
        ["kind", "exchange", "symbol", "from_seq"]
    )
    assert got.equals(injected)


def test_feed_is_deterministic_and_covers_six_classes() -> None:
    a = pl.concat([b.rows for b in SyntheticFeed(ticks=20_000, seed=9).batches() if b.kind == Kind.QUOTE])
    b = pl.concat([b.rows for b in SyntheticFeed(ticks=20_000, seed=9).batches() if b.kind == Kind.QUOTE])
    assert a.equals(b)
    assert len(universe()) >= 160
    assert {i.asset_class for i in universe()} == set(ASSET_CLASSES)
    assert set(a["asset_class"].unique()) == set(ASSET_CLASSES)
    assert (a["bid"] < a["ask"]).all()


def test_equities_only_trade_in_market_hours() -> None:
    # 2024-01-06 is a Saturday: no equity, ETF or index ticks, forex closed too
    from datetime import UTC, datetime

    feed = SyntheticFeed(ticks=20_000, seed=3, start=datetime(2024, 1, 6, tzinfo=UTC))
    rows = pl.concat([b.rows.select("asset_class") for b in feed.batches()])
    assert set(rows["asset_class"].unique()) == {"crypto"}


def test_tardis_quotes_are_all_valid_even_with_shared_timestamps(tardis) -> None:
    quotes, trades = tardis
    for path in (quotes, trades):
        kind = detect_tardis_kind(path)
        san = Sanitizer(kind)
        total = rejected = 0
        for b in iter_csv(path, tardis_mapping(kind)):
            r = san.process(b.rows)
            total += r.accepted.height
            rejected += r.rejects.height + b.rejects.height
        assert (total, rejected) == (9_999, 0)
    ts = pl.read_csv(quotes)["timestamp"]
    assert ts.len() - ts.n_unique() == 416  # quotes sharing an exchange timestamp stay distinct


def _csv(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "q.csv"
    p.write_text("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n" + body)
    return p


def test_bad_lines_are_rejected_and_valid_rows_kept(tmp_path: Path) -> None:
    good = "x,BTC,1582329601096000,1582329601096100,1,101,100,1\n"
    lines = [
        good,
        "x,BTC,1582329601097000,1582329601097100,1,NaN,100,1\n",  # non-finite
        "x,BTC,1582329601098000,1582329601098100,1,Infinity,100,1\n",  # non-finite
        "x,BTC,1582329601099000,1582329601099100,1,1e400,100,1\n",  # overflow → inf
        "x,BTC,1582329601100000,1582329601100100,1,abc,100,1\n",  # wrong type
        "x,BTC,158232960110x000,1582329601100100,1,101,100,1\n",  # bad timestamp
        "x,BTC,1582329601101000\n",  # too few fields
        "x,BTC,1582329601102000,1582329601102100,1,101,100,1,extra\n",  # too many
        "x,BTC,1582329601103000,1582329601103100,1,101,,1\n",  # missing bid
        "x,BTC,1582329601104000,1582329601104100,1,101,100.5,1\n",  # valid
    ]
    path = _csv(tmp_path, "".join(lines))
    san = Sanitizer(Kind.QUOTE)
    kept, rejects = [], []
    for b in iter_csv(path, tardis_mapping(Kind.QUOTE)):
        r = san.process(b.rows)
        kept.append(r.accepted)
        rejects.append(pl.concat([b.rejects, r.rejects], how="vertical_relaxed"))
    acc, rej = pl.concat(kept), pl.concat(rejects).sort("_offset")
    assert acc["bid"].to_list() == [100.0, 100.5]
    assert rej["_offset"].to_list() == [3, 4, 5, 6, 7, 8, 9, 10]  # physical line numbers
    assert rej["rule"].to_list() == ["non_finite"] * 3 + ["malformed"] * 5
    assert rej.filter(pl.col("_offset") == 9)["_raw"][0].endswith(",extra")
    assert "ask" in rej.filter(pl.col("_offset") == 6)["reason"][0]


def test_missing_column_and_empty_file_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceError, match="empty file"):
        detect_tardis_kind(empty)
    p = tmp_path / "nobid.csv"
    p.write_text("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_amount\nx,B,1,1,1,1,1\n")
    with pytest.raises(SourceError, match="bid_price"):
        detect_tardis_kind(p)
    with pytest.raises(MissingColumnError, match="bid_price"):
        list(iter_csv(p, tardis_mapping(Kind.QUOTE)))


def test_raise_policy_stops_the_batch(tmp_path: Path) -> None:
    path = _csv(tmp_path, "x,BTC,1582329601096000,1582329601096100,1,99,100,1\n")
    san = Sanitizer(Kind.QUOTE, SanitizeConfig(policies={"crossed_book": Policy.RAISE}))
    with pytest.raises(SanitizeError, match="crossed_book"):
        for b in iter_csv(path, tardis_mapping(Kind.QUOTE)):
            san.process(b.rows)


def test_pipeline_into_the_memory_sink_is_idempotent() -> None:
    from warehouse.pipeline import run_import
    from warehouse.sinks import MemorySink

    feed = SyntheticFeed(ticks=30_000, seed=4, faults=FaultRates(bad=0.02, duplicate=0.02, gap=0.01))
    sink = MemorySink()
    first = run_import(feed.batches(), source=feed.source, sinks=[sink])
    second = run_import(feed.batches(), source=feed.source, sinks=[sink])
    n_bad = sum(first.rejected.values())
    assert first.stored("memory") == 30_000 + first.rejected.get("duplicate", 0) - n_bad
    assert second.stored("memory") == 0 and second.already("memory") == first.stored("memory")
    assert sink.tables["rejects"].num_rows == n_bad
    assert sink.tables["gaps"].num_rows == first.gaps > 0


@pytest.mark.parametrize("seed", [5, 6])
def test_verdicts_do_not_depend_on_batch_edges_or_restarts(seed: int) -> None:
    """The same stream cut into other batches, with the state carried through bytes
    (snapshot → a new Sanitizer → restore, as the consumer does across a crash) at every
    edge, gets exactly the same verdicts, gaps included."""
    import random

    feed = SyntheticFeed(ticks=30_000, seed=seed, chunk=30_000, duration_s=600.0,
                         faults=FaultRates(bad=0.02, duplicate=0.03, out_of_order=0.03, gap=0.01))  # fmt: skip
    batches = list(feed.batches())

    def verdicts(pieces: int | None) -> tuple[set, set]:
        rng = random.Random(seed)
        out_rej, out_gaps = set(), set()
        for b in batches:
            state: dict[str, bytes] = {}
            n = b.rows.height
            cuts = sorted(rng.sample(range(1, n), pieces)) if pieces else []
            for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
                san = Sanitizer(b.kind)
                san.restore(state)  # empty state the first time
                r = san.process(b.rows.slice(lo, hi - lo))
                state = san.snapshot()
                out_rej |= set(r.rejects.select("_offset", "rule").iter_rows())
                out_gaps |= set(r.gaps.select("exchange", "symbol", "from_seq", "to_seq").iter_rows())
        return out_rej, out_gaps

    whole = verdicts(None)
    assert {r for _, r in whole[0]} >= {"duplicate", "out_of_order", "spike"}
    assert whole[1]
    assert verdicts(37) == whole


def test_a_sizeless_quote_with_a_bad_price_is_a_reject_with_a_reason(tmp_path: Path) -> None:
    """An FX feed has no sizes (NULL): the reason of a non-positive bid once came out NULL and the
    whole batch failed to convert ("Casting field 'reason' with null values to non-nullable")."""
    from warehouse.pipeline import BatchStep
    from warehouse.pipeline.sources import file_batches

    f = tmp_path / "fx.csv"
    f.write_text("time,bid,ask\n2024-01-02 10:00:00.000,1.1,1.2\n2024-01-02 10:00:01.000,-1,1.2\n")
    batches = list(file_batches(f, "csv", kind=Kind.QUOTE, columns={"timestamp": "time", "bid": "bid", "ask": "ask"},
                                constants={"symbol": "EURUSD", "exchange": "EBS", "asset_class": "forex"},
                                ts_format="%Y-%m-%d %H:%M:%S%.f"))  # fmt: skip
    out = BatchStep("fx").__call__(batches)
    assert out.batch["market_ticks"].num_rows == 1
    (reason,) = out.batch["rejects"].column("reason").to_pylist()
    assert reason == "price or size <= 0: bid=-1.0, ask=1.2, bid_size=null, ask_size=null"


_T0 = 1_700_000_000 * 10**9
_GROUPS = [("X", "AAA"), ("X", "BBB"), ("Y", "AAA"), ("Y", "CCC")]
_row = st.tuples(
    st.integers(0, 3),  # group
    st.integers(-25, 8),  # event time step (ns; negative: a late tick, beyond the tolerance of 10 below -10)
    st.sampled_from(["next", "next", "next", "same", "jump", "back", "none"]),  # what seq does
    st.sampled_from([10.0, 10.0, 10.25, 9.75, 10.5, 12.0, 8.0, 100.0, -1.0]),  # price (-1: a stateless reject)
    st.integers(0, 6),  # 0: repeat an earlier row exactly (a duplicate); else a content variant
)


def _stream(kind: Kind, spec: list) -> pl.DataFrame:
    rows, ts, seq = [], {}, {}
    for n, (g, step, seq_op, px, variant) in enumerate(spec):
        if variant == 0 and rows:
            rows.append({**rows[(n * 7919) % len(rows)], "_offset": n})
            continue
        ts[g] = ts.get(g, _T0) + step
        s = seq.get(g, 0)
        s = {"next": s + 1, "same": s, "jump": s + 3, "back": max(s - 2, 0), "none": None}[seq_op]
        if s is not None:
            seq[g] = s
        row = {"_offset": n, "timestamp": ts[g], "received_at": ts[g] + 100 + n % 3, "exchange": _GROUPS[g][0],
               "symbol": _GROUPS[g][1], "asset_class": "crypto", "seq": s}  # fmt: skip
        if kind == Kind.QUOTE:
            row |= {"bid": px - 0.05, "ask": px + 0.05 * (variant % 2 + 1),
                    "bid_size": None if variant == 6 else 1.0 + variant % 3, "ask_size": 2.0}  # fmt: skip
        else:
            row |= {"trade_id": f"t{variant % 4}", "side": "buy", "price": px, "size": 1.0 + variant % 2}
        rows.append(row)
    schema = {"_offset": pl.Int64, "timestamp": pl.Int64, "received_at": pl.Int64, "exchange": pl.String,
              "symbol": pl.String, "asset_class": pl.String, "seq": pl.Int64}  # fmt: skip
    if kind == Kind.QUOTE:
        schema |= {"bid": pl.Float64, "ask": pl.Float64, "bid_size": pl.Float64, "ask_size": pl.Float64}
    else:
        schema |= {"trade_id": pl.String, "side": pl.String, "price": pl.Float64, "size": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


@pytest.mark.parametrize("kind", [Kind.QUOTE, Kind.TRADE])
@settings(max_examples=60, deadline=None)
@given(spec=st.lists(_row, max_size=250), cuts=st.lists(st.integers(1, 249), max_size=4),
       window=st.integers(1, 8), min_samples=st.integers(1, 8))  # fmt: skip
def test_the_compiled_pass_gives_the_polars_rules_verdicts(
    kind: Kind, spec, cuts, window: int, min_samples: int
) -> None:
    """Duplicates (seq-less quotes by content, NULL sizes), late ticks beyond and within the
    tolerance, seq repeats, jumps and reorders, spikes, stateless rejects among them, groups
    interleaved, the stream cut into batches with the state carried through bytes at each cut:
    the compiled pass gives the rejects (rule and reason), accepted rows and gap events of the
    polars rules it replaced (tests/unit/sanitize_reference.py) — the accepted rows in storage
    order, the rest in the same order."""
    from sanitize_reference import ReferenceSanitizer

    config = SanitizeConfig(out_of_order_tolerance=10, spike_window=window,
                            spike_min_samples=min(min_samples, window), spike_band=0.1)  # fmt: skip
    stream = _stream(kind, spec)
    reference = ReferenceSanitizer(kind, config)
    state: dict[str, bytes] = {}
    edges = sorted({c for c in cuts if c < stream.height})
    for lo, hi in zip([0, *edges], [*edges, stream.height], strict=True):
        batch = stream.slice(lo, hi - lo)
        san = Sanitizer(kind, config)
        san.restore(state)
        got, want = san.process(batch), reference.process(batch)
        state = san.snapshot()
        assert got.rejects.select("_offset", "rule", "reason").equals(want.rejects.select("_offset", "rule", "reason"))
        in_storage_order = want.accepted.sort(list(STORAGE_ORDER[TABLE_FOR_KIND[kind]]), nulls_last=True,
                                              maintain_order=True)  # fmt: skip
        assert got.accepted.equals(in_storage_order)
        assert got.gaps.equals(want.gaps)


def test_a_restore_undoes_a_batch_of_a_kind_the_snapshot_had_not_seen() -> None:
    """The consumer restores its committed state when a batch's write fails and reads the batch
    again. A snapshot taken before any trade holds no trade keys: the restore must drop the keys
    of the failed batch's trades too, or the retried trades would all be rejected as duplicates."""
    from warehouse.pipeline import BatchStep

    quotes, trades = (
        _stream(Kind.QUOTE, [(0, 1, "next", 10.0, 1)] * 3),
        _stream(Kind.TRADE, [(1, 1, "next", 10.0, 1)] * 3),
    )
    step = BatchStep("test")
    step.sanitizers[Kind.QUOTE].process(quotes)
    committed = step.snapshot()
    first = step.sanitizers[Kind.TRADE].process(trades)
    step.restore(committed)  # the write failed: back to what is stored
    again = step.sanitizers[Kind.TRADE].process(trades)
    assert first.accepted.height == again.accepted.height == 3 and again.rejects.height == 0
    step.restore({})  # nothing stored yet: nothing remembered
    assert step.sanitizers[Kind.QUOTE].process(quotes).accepted.height == 3


def test_the_compiled_pass_keeps_seq_exact_beyond_2_to_the_53() -> None:
    """A NULL seq in the batch once turned the gap's upper end into a float (to_seq off by one)."""
    big = 2**53 + 1
    rows = _stream(Kind.QUOTE, [(0, 1, "next", 10.0, 1)] * 3).with_columns(
        pl.Series("seq", [big, None, big + 3], pl.Int64)
    )
    gaps = Sanitizer(Kind.QUOTE).process(rows).gaps
    assert gaps.select("from_seq", "to_seq", "missing").rows() == [(big + 1, big + 2, 2)]
