"""Hostile input end to end, on both engines: what a bad line or message costs is itself.

The corpus (tests/corpus/) runs through `wh import` (CSV files) and through a real
consumer group on the embedded broker (Kafka messages). Each case once crashed the
importer or blocked a partition (see the hardening issue); the counts here are exact.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.config import Settings
from warehouse.ingest.decode import Mapping
from warehouse.ingest.files import detect_tardis_kind, iter_csv, iter_parquet, tardis_mapping
from warehouse.pipeline import ImportReport, run_import
from warehouse.records import Kind
from warehouse.sinks import open_sinks

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
WH = [sys.executable, "-m", "warehouse.cli.main"]
ENGINES = ["duckdb", "clickhouse"]


def _import(path: Path, settings: Settings, mapping: Mapping | None = None) -> ImportReport:
    sinks = open_sinks(ENGINES, settings)
    try:
        batches = iter_csv(path, mapping or tardis_mapping(detect_tardis_kind(path)))
        return run_import(batches, source=str(path), sinks=sinks)
    finally:
        for s in sinks:
            s.close()


def _rows(settings: Settings, sql: str) -> dict[str, pl.DataFrame]:
    from warehouse.sql.engines import close_embedded, open_engine

    out = {}
    for name in ENGINES:
        eng = open_engine(name, settings, read_only=True)
        try:
            df = pl.from_arrow(eng.query(sql))
            assert isinstance(df, pl.DataFrame)
            out[name] = df
        finally:
            eng.close()
    close_embedded()
    return out


def test_corpus_files_cost_only_their_bad_lines(home: Path) -> None:
    expected = json.loads((CORPUS / "csv" / "expected.json").read_text())
    settings = Settings(home=home)
    for name, want in expected.items():
        report = _import(CORPUS / "csv" / name, settings)
        rejected = {"malformed": want["malformed"], "non_finite": want.get("non_finite", 0)}
        got = {rule: report.rejected.get(rule, 0) for rule in rejected}
        assert got == rejected, (name, report.rejected)
        for engine in ENGINES:
            assert report.stored(engine) + report.already(engine) == want["stored"], (name, engine)
        assert report.rows_read == want["stored"] + sum(rejected.values()), name


def test_tardis_day_with_hostile_lines_stores_every_valid_row(
    home: Path, tardis: tuple[Path, Path], tmp_path: Path
) -> None:
    """The issue's cases on the real sample: a stray quote on line 4 once turned the rest
    of the file into one 844 KB reject (2 rows stored); a blank local_timestamp crashed the
    import; a latin-1 line and a 50 MB line aborted it half-way."""
    quotes, _ = tardis
    lines = quotes.read_bytes().split(b"\n")
    assert lines[-1] == b""
    data = lines[1:-1]
    n = len(data)
    data[2] = data[2].replace(b",BTCUSDT", b',"BTCUSDT')  # line 4
    data[100] = data[100].replace(b",BTCUSDT,", b",BTC\xe9USDT,")  # latin-1 byte in a cell
    cells = data[200].split(b",")
    cells[3] = b""  # blank local_timestamp: kept, receipt time = event time
    data[200] = b",".join(cells)
    hostile = tmp_path / "hostile.csv"
    with hostile.open("wb") as f:
        f.write(lines[0] + b"\n" + b"\n".join(data[:5000]) + b"\n")
        f.write(b"y" * (50 << 20) + b"\n")  # a 50 MB line
        f.write(b"\n".join(data[5000:]) + b"\n")
    settings = Settings(home=home)
    report = _import(hostile, settings)
    assert report.rejected == {"malformed": 3}
    for engine in ENGINES:
        assert report.stored(engine) == n - 2  # every row but the quote line and the latin-1 line
    rej = _rows(settings, "SELECT source_offset, reason, raw FROM wh.rejects ORDER BY source_offset")
    for engine, df in rej.items():
        assert df["source_offset"].to_list() == [4, 102, 5002], engine
        assert max(len(r) for r in df["raw"].to_list()) < 4200, engine
        assert "52,428,800 bytes" in df["reason"][2]
    # the repaired file (gzip, then zstd) adds the two rejected rows and the row whose receipt
    # time was blanked (its receipt time differs, so it is another record), nothing else
    clean = tmp_path / "clean.csv.gz"
    clean.write_bytes(gzip.compress(quotes.read_bytes()))
    report = _import(clean, settings)
    assert {e: report.stored(e) for e in ENGINES} == {"duckdb": 3, "clickhouse": 3}
    zst = tmp_path / "clean.csv.zst"
    with pa.CompressedOutputStream(str(zst), "zstd") as out:
        out.write(quotes.read_bytes())
    report = _import(zst, settings)
    assert report.rows_read == n and {e: report.stored(e) for e in ENGINES} == {"duckdb": 0, "clickhouse": 0}


def test_fx_quotes_sharing_a_timestamp_are_distinct_and_need_no_sizes(home: Path, tmp_path: Path) -> None:
    """FX feeds: timestamp, bid, ask — no sequence numbers, no receipt times, no sizes.
    Distinct quotes at one timestamp were dropped as duplicates (0.7 % of a real file)."""
    path = tmp_path / "eurusd.csv"
    rows = ["time,bid,ask"]
    for i in range(200):
        t = f"2024-01-02 10:00:{i // 4:02d}.000"  # four quotes per timestamp, different prices
        rows.append(f"{t},{1.1 + i * 1e-5:.5f},{1.1002 + i * 1e-5:.5f}")
    rows.append(rows[-1])  # one true repeat: same time, same prices
    path.write_text("\n".join(rows) + "\n")
    m = Mapping(Kind.QUOTE, {"timestamp": "time", "bid": "bid", "ask": "ask"},
                {"symbol": "EURUSD", "exchange": "EBS", "asset_class": "forex"}, ts_format="%Y-%m-%d %H:%M:%S%.f")  # fmt: skip
    settings = Settings(home=home)
    report = _import(path, settings, m)
    assert report.rejected == {"duplicate": 1}
    assert {e: report.stored(e) for e in ENGINES} == {"duckdb": 200, "clickhouse": 200}
    again = _import(path, settings, m)  # re-import adds nothing
    assert {e: again.stored(e) for e in ENGINES} == {"duckdb": 0, "clickhouse": 0}
    for engine, df in _rows(settings, "SELECT count(*) AS n, count(bid_size) AS sized FROM wh.market_ticks").items():
        assert df.row(0) == (200, 0), engine  # sizes stored as NULL, not a made-up 0


def test_parquet_blank_receipt_time_and_a_corrupt_row_group(home: Path, tmp_path: Path) -> None:
    from warehouse.ingest.files import identity_mapping
    from warehouse.ingest.synthetic import SyntheticFeed

    quotes = pl.concat([b.rows for b in SyntheticFeed(ticks=8_000, seed=4).batches() if b.kind == Kind.QUOTE]).head(
        6_000
    )
    quotes = quotes.drop([c for c in quotes.columns if c.startswith("_")])
    quotes = quotes.with_columns(
        pl.when(pl.int_range(pl.len()) == 10).then(None).otherwise(pl.col("received_at")).alias("received_at")
    )
    path = tmp_path / "quotes.parquet"
    pq.write_table(quotes.to_arrow(), path, row_group_size=1_000, compression="none")
    # corrupt the middle of the file: some row group(s) become unreadable, the others not
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 2000] = b"\xff" * 2000
    path.write_bytes(bytes(raw))
    m = identity_mapping(Kind.QUOTE, pq.ParquetFile(path).schema_arrow.names)
    settings = Settings(home=home)
    sinks = open_sinks(ENGINES, settings)
    try:
        report = run_import(iter_parquet(path, m, batch_rows=500), source=str(path), sinks=sinks)
    finally:
        for s in sinks:
            s.close()
    lost = report.rejected.get("malformed", 0)
    assert 1 <= lost <= 3  # one reject per unreadable row group, each naming its rows
    stored = report.stored("duckdb")
    assert report.stored("clickhouse") == stored
    assert 6_000 - 3 * 1_000 <= stored < 6_000
    rej = _rows(settings, "SELECT reason FROM wh.rejects")["duckdb"]["reason"].to_list()
    assert all("unreadable" in r and "not imported" in r for r in rej)


def test_truncated_parquet_and_directories_give_an_error_line(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), bad)
    bad.write_bytes(bad.read_bytes()[:300])
    empty_dir = tmp_path / "nothing_here"
    empty_dir.mkdir()
    for args in (["import", str(bad), "--format", "parquet"], ["import", str(empty_dir)],
                 ["import", str(tmp_path / "missing.csv")]):  # fmt: skip
        r = subprocess.run(
            [*WH, *args], capture_output=True, text=True, env={**__import__("os").environ, "WH_HOME": str(home)}
        )
        assert r.returncode == 1, args
        assert "Error:" in r.stderr and "Traceback" not in r.stderr + r.stdout, (args, r.stderr)


def test_a_directory_imports_its_files(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "landing"
    folder.mkdir()
    for name in ("stray_quote.csv", "bom_crlf.csv"):
        (folder / name).write_bytes((CORPUS / "csv" / name).read_bytes())
    (folder / "notes.md").write_text("not a tick file")
    r = subprocess.run([*WH, "import", str(folder), "--engine", "duckdb"], capture_output=True, text=True,
                       env={**__import__("os").environ, "WH_HOME": str(home)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "stray_quote.csv" in r.stdout and "bom_crlf.csv" in r.stdout and "notes.md" not in r.stdout


@pytest.mark.kafka
def test_corpus_messages_through_a_consumer_group(home: Path, broker: str, topic: str) -> None:
    """Poison pills on a real topic: the consumer stores every valid tick, rejects each bad
    message once with its bytes, commits, and a restart adds nothing."""
    from confluent_kafka import Producer

    from warehouse.ingest.consumer import Ingestor
    from warehouse.ingest.kafka import encode
    from warehouse.ingest.synthetic import SyntheticFeed

    valid: list[tuple[str, bytes]] = []
    for b in SyntheticFeed(ticks=3_000, seed=8).batches():
        rows = b.rows.drop([c for c in b.rows.columns if c.startswith("_")])
        valid += [(s, v.encode()) for s, v in zip(rows["symbol"], encode(rows, b.kind).to_list(), strict=True)]
    corpus = sorted((CORPUS / "messages").glob("*.bin"))
    producer = Producer({"bootstrap.servers": broker, "enable.idempotence": True})
    step = len(valid) // (len(corpus) + 1)
    for i, (key, value) in enumerate(valid):
        producer.produce(topic, value=value, key=key)
        if i % step == step - 1 and i // step < len(corpus):
            producer.produce(topic, value=corpus[i // step].read_bytes(), key="CORPUS")
    assert producer.flush(30) == 0
    settings = Settings(home=home)
    for _ in range(2):  # the second run must find nothing new
        sinks = open_sinks(ENGINES, settings)
        try:
            ing = Ingestor(sinks, bootstrap=broker, topic=topic, group=f"g-{topic}", batch_rows=700,
                           batch_seconds=0.5, stop_when_idle=2.0)  # fmt: skip
            ing.run()
        finally:
            for s in sinks:
                s.close()
    accepted = sum(p.name.startswith("accept_") for p in corpus)
    rejected = len(corpus) - accepted
    got = _rows(settings, "SELECT (SELECT count(*) FROM wh.market_ticks) + (SELECT count(*) FROM wh.trades) AS n, "
                          "(SELECT count(*) FROM wh.rejects) AS r, "
                          "(SELECT count(*) FROM wh.rejects WHERE raw LIKE '%xff%xfe%') AS bytes_kept")  # fmt: skip
    for engine, df in got.items():
        n, r, bytes_kept = df.row(0)
        assert (n, r) == (len(valid) + accepted, rejected), engine
        assert bytes_kept >= 1, engine  # the non-UTF-8 message's bytes, escaped
