"""Pipeline specs (pipelines/*.yaml): the shipped ones load, mistakes name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse.errors import ConfigError
from warehouse.pipeline.spec import all_specs, load_spec
from warehouse.records import Kind
from warehouse.sanitize import Policy


def test_shipped_specs_load_and_the_defaults_are_todays_commands() -> None:
    specs = {s.name: s for _, s in all_specs()}
    assert {"ticks", "files", "fx_csv"} <= set(specs)
    ticks = specs["ticks"]
    assert ticks.source.kafka is not None and (ticks.source.kafka.topic, ticks.source.kafka.group) == (
        "ticks",
        "wh-ingest",
    )
    assert (ticks.batch.rows, ticks.batch.seconds) == (50_000, 2.0)
    cfg = ticks.sanitize.config()
    assert cfg.out_of_order_tolerance == 5_000_000_000 and cfg.spike_band == 0.10 and cfg.spike_window == 21
    files = specs["files"]
    assert files.source.files is not None and files.source.files.format == "tardis"
    fx = specs["fx_csv"].source.files
    assert fx is not None and fx.mapping(Kind.QUOTE).columns == {"timestamp": "time", "bid": "bid", "ask": "ask"}
    live = specs["binance_live"]  # a capture spec: `wh capture` feeds the topic `wh ingest` reads
    assert live.source.capture is not None and live.source.capture.exchange == "binanceusdm"
    assert live.source.stream is not None and (live.source.stream.topic, live.source.stream.group) == (
        "binance_ticks",
        "wh-ingest-binance",
    )
    assert ticks.source.stream == ticks.source.kafka and files.source.stream is None


@pytest.mark.parametrize(("text", "words"), [
    ("name: x\nsource: {}\n", ["source", "exactly one of kafka"]),
    ("name: x\nsource: {capture: {exchange: kraken, symbols: [XBTUSD], topic: t}}\n", ["source.capture", "binanceusdm"]),
    ("name: x\nsource: {capture: {exchange: binance, symbols: [A]}}\n", ["source.capture.topic", "Field required"]),
    ("name: x\nsource: {capture: {exchange: binance, symbols: [], topic: t}}\n", ["source.capture.symbols"]),
    ("name: x\nsource: {capture: {exchange: binance, symbols: [A], topic: t, channels: [books]}}\n", ["channels.0"]),
    ("name: x\nsource: {capture: {exchange: binance, symbols: [A], topic: t}, kafka: {}}\n", ["exactly one"]),
    ("name: x\nsource: {kafka: {topic: t}, files: {path: a}}\n", ["exactly one"]),
    ("name: x\nsource: {kafka: {}}\nsinks: []\n", ["sinks"]),
    ("name: x\nsource: {kafka: {}}\nsinks: [duckdb, duckdb]\n", ["name each sink once"]),
    ("name: x\nsource: {kafka: {}}\nsinks: [redis]\n", ["sinks.0", "'duckdb', 'clickhouse' or 'questdb'"]),
    ("name: x\nsource: {kafka: {}}\nsanitize: {policies: {nosuch: reject}}\n", ["sanitize.policies"]),
    ("name: x\nsource: {kafka: {}}\nsanitize: {policies: {spike: ignore}}\n", ["sanitize.policies.spike"]),
    ("name: x\nsource: {kafka: {}}\nbatch: {rows: 0}\n", ["batch.rows", "greater than 0"]),
    ("name: x\nsource: {kafka: {}}\ntypo: 1\n", ["typo", "Extra inputs"]),
    ("name: x\nsource: {files: {format: csv}}\n", ["needs a column map"]),
    ("name: x\nsource: {files: {format: csv, map: {bidd: b}}}\n", ["unknown field(s) bidd"]),
    ("name: Bad Name\nsource: {kafka: {}}\n", ["name"]),
    ("- a list\n", ["a mapping"]),
    ("name: [unclosed\n", ["not valid YAML"]),
])  # fmt: skip
def test_mistakes_name_the_file_and_the_field(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    for w in words:
        assert w in msg, msg


def test_policies_and_files_under_home(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsource: {files: {path: landing/*.csv.gz}}\nsanitize: {policies: {crossed_book: raise}}\n")
    spec = load_spec(path)
    assert spec.sanitize.config().policy("crossed_book") == Policy.RAISE
    assert spec.sinks == ["duckdb", "clickhouse"]
    (tmp_path / "landing").mkdir()
    for name in ("b.csv.gz", "a.csv.gz", "c.txt"):
        (tmp_path / "landing" / name).write_bytes(b"")
    assert spec.source.files is not None
    assert [p.name for p in spec.source.files.files(tmp_path)] == ["a.csv.gz", "b.csv.gz"]
