"""Defects a user met at the command line: each gives one `Error: …` line and exit 1, never a
traceback, a hang, or a silent success (hardening issue, items 6, 11, 12 and 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from warehouse.cli import main as cli

pytestmark = [pytest.mark.integration]
runner = CliRunner()
WH = [sys.executable, "-m", "warehouse.cli.main"]
HEADER = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"


def wh(*args: str):
    return runner.invoke(cli.app, list(args))


def refused(r, *needles: str) -> str:
    """The command failed the way every deliberate error should: exit 1, an Error line, no traceback."""
    out = r.output
    assert r.exit_code == 1, (r.exit_code, out, r.exception)
    assert "Error:" in out, out
    assert "Traceback" not in out, out
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), repr(r.exception)
    for n in needles:
        assert n in out, (n, out)
    return out


def usage_error(r, flag: str) -> str:
    """A bad choice is click's usage error (exit 2) naming the option, before anything runs."""
    out = r.output
    assert r.exit_code == 2, (r.exit_code, out, r.exception)
    assert f"Invalid value for '{flag}'" in out and "Traceback" not in out, out
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- item 11: error text is printed literally, fast, and bounded --------------------------


@pytest.mark.parametrize("size", [900_000, 5_000_000])
def test_a_huge_header_without_separators_fails_fast_with_a_short_error(tmp_path: Path, size: int) -> None:
    """The header went through rich's highlighter, which is quadratic: 40 KB took 15 s and
    5 MB would not finish. The message is cut to a few hundred characters. (Past 1 MB the
    first line is refused as a header before its cells are read.)"""
    path = tmp_path / "one_line.csv"
    path.write_bytes(b"a" * size + b"\n1\n")
    env = {**os.environ, "WH_HOME": str(tmp_path / "wh")}
    t = time.perf_counter()
    try:
        p = subprocess.run([*WH, "import", str(path), "--format", "csv", "--engine", "duckdb"],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("wh import hung on a 5 MB header (rich highlighting the error text)")
    elapsed = time.perf_counter() - t
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("Error:"))
    if size < 1 << 20:
        assert "missing column 'timestamp'" in line and f"({size:,} bytes)" in line, line[:500]
    else:
        assert "the first line is longer than 1,048,576 bytes: not a CSV header" in line, line[:500]
    assert len(line) < 2_000, len(line)
    assert elapsed < 10, elapsed  # ~1 s of it is starting Python


def test_error_text_is_never_markup_or_emoji(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("exchange,:x:,[bold]bid,[/]\n1,2,3,4\n")
    out = refused(wh("import", str(path), "--format", "csv", "--engine", "duckdb"))
    assert ":x:" in out and "[bold]bid" in out and "[/]" in out and "❌" not in out, out
    # through the app's error handler (WarehouseGroup), with a value the user typed
    out = refused(wh("query", "zscore", ":x:[bold]", "--engine", "duckdb"))
    assert "':x:[bold]'" in out and "❌" not in out, out


def test_table_cells_from_files_are_printed_literally(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "syms.csv"
    path.write_text(HEADER.replace("symbol", "symbol") + "x,[red]S:x:,1582329601096000,1582329601096100,1,101,100,1\n")
    r = wh("import", str(path), "--engine", "duckdb")
    assert r.exit_code == 0, r.output
    r = wh("query", "symbols", "--engine", "duckdb")
    assert r.exit_code == 0, r.output
    assert "[red]S:x:" in r.output and "❌" not in r.output, r.output


def test_the_error_printer_clips_long_values_and_keeps_the_hint() -> None:
    from warehouse.cli.common import shorten

    msg = "f.csv: missing column 'ts' (found: " + "b" * 100_000 + "); map it with --map FIELD=COLUMN"
    out = shorten(msg)
    assert len(out) < 600 and out.endswith("); map it with --map FIELD=COLUMN")
    assert "… (100,000 bytes)" in out
    many = "found: " + ", ".join(f"c{i}" for i in range(50_000)) + "; fix it like this"
    out = shorten(many)
    assert len(out) < 2_500 and out.endswith("; fix it like this") and "bytes cut" in out
    assert shorten("short [bold] :x:") == "short [bold] :x:"


# -- item 6: an empty or unknown sink list is refused before anything is consumed -----------


@pytest.mark.kafka
def test_ingest_refuses_an_empty_sink_list_before_consuming(home: Path) -> None:
    from warehouse.ingest.kafka import MockBroker, committed_offsets, produce
    from warehouse.ingest.synthetic import SyntheticFeed

    broker = MockBroker()
    try:
        produce(broker.bootstrap, "t6", SyntheticFeed(ticks=300, seed=6, chunk=300).batches())
        for sinks, needle in ((",", "no sink"), ("", "no sink"), ("duckdb,nosuch", "'nosuch'"),
                              ("duckdb,duckdb", "twice")):  # fmt: skip
            r = wh("ingest", "--sinks", sinks, "--bootstrap", broker.bootstrap, "--topic", "t6", "--group", "g6",
                   "--stop-when-idle", "1")  # fmt: skip
            refused(r, "--sinks", needle)
        assert committed_offsets(broker.bootstrap, "t6", "g6") == {}  # nothing consumed, nothing lost
    finally:
        broker.close()


# -- item 12: tracebacks where an Error line belongs -----------------------------------------


@pytest.fixture
def day(home: Path, tardis: tuple[Path, Path]) -> Path:
    """The Tardis sample day (4 minutes of BTCUSDT quotes and trades) in DuckDB."""
    r = wh("import", str(tardis[0]), str(tardis[1]), "--engine", "duckdb")
    assert r.exit_code == 0, r.output
    return home


REPLAY = ("replay", "-s", "zscore", "--symbols", "BTCUSDT", "--from", "2020-02-22", "--to", "2020-02-23",
          "--write-to", "none")  # fmt: skip


@pytest.mark.parametrize(("args", "needle"), [
    (("--snapshot-every", "0"), "snapshot"),
    (("--cash", "0"), "cash"),
    (("--cash", "-5"), "cash"),
    (("--cash", "nan"), "cash"),
    (("--cash", "inf"), "cash"),
    (("--sweep", "window="), "--sweep"),
    (("--speed", "0"), "speed"),
])  # fmt: skip
def test_replay_refuses_bad_settings(day: Path, args: tuple[str, ...], needle: str) -> None:
    refused(wh(*REPLAY, *args), needle)


def test_import_refuses_a_timestamp_format_that_cannot_parse_and_bad_constants(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "generic.csv"
    path.write_text("ts,sym,bid,ask,bs,as\n2020-01-01 00:00:00,BTC,1,2,1,1\n")
    base = ["import", str(path), "--format", "csv", "--engine", "duckdb", "--map", "timestamp=ts", "--map", "symbol=sym",
            "--map", "bid=bid", "--map", "ask=ask", "--map", "bid_size=bs", "--map", "ask_size=as",
            "--const", "exchange=x", "--const", "asset_class=crypto"]  # fmt: skip
    refused(wh(*base, "--ts-format", "%Q"), "--ts-format '%Q'")
    refused(wh(*base, "--ts-format", "%H:%M"), "--ts-format '%H:%M'")  # no date: polars made 1754 of it
    refused(wh(*base, "--const", "seq=abc"), "seq", "'abc'")
    usage_error(wh(*base, "--kind", "quotez"), "--kind")  # a choice (quotes|trades): click refuses it
    r = wh(*base, "--ts-format", "%Y-%m-%d %H:%M:%S", "--const", "seq=7")
    assert r.exit_code == 0 and "malformed" not in r.output, r.output


@pytest.mark.clickhouse
def test_bench_zscore_with_clickhouse_unreachable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}")
    t = time.perf_counter()
    refused(wh("bench", "zscore", "--ticks", "2000", "--repeats", "1"), "clickhouse", "cannot connect")
    assert time.perf_counter() - t < 30


def test_output_paths_that_are_folders_are_refused_and_missing_folders_created(day: Path, tmp_path: Path) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    for args in (("query", "symbols", "-o", str(folder)),
                 ("query", "symbols", "--format", "parquet", "-o", str(folder)),
                 ("sql", "SELECT 1 AS x", "-o", str(folder)),
                 ("plot", "zscore", "BTCUSDT", "-o", str(folder)),
                 (*REPLAY, "--fills-out", str(folder))):  # fmt: skip
        refused(wh(*args), "is a directory")
    assert list(folder.iterdir()) == []
    deep = tmp_path / "new" / "deeper" / "symbols.csv"
    r = wh("query", "symbols", "--format", "csv", "-o", str(deep))
    assert r.exit_code == 0 and deep.read_text().startswith('"symbol"'), r.output
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    refused(wh("query", "symbols", "-o", str(blocked / "x.csv")), "cannot create its folder")


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0  # fmt: skip


@pytest.mark.parametrize("ticks", ["60000", "200000"])  # the commit fails / an insert fails
def test_a_full_disk_is_reported_with_its_cause(tmp_path: Path, ticks: str) -> None:
    """DuckDB on a 2 MB tmpfs: the commit (or an insert) fails with 'No space left on device';
    the old code then raised `cannot rollback - no transaction is active` (or 'Current
    transaction is aborted') from the rollback/cleanup, a traceback hiding the cause."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root); test_duckdb_commit_failure covers it by injection")
    try:
        p = subprocess.run([*WH, "generate", "--ticks", ticks, "--engine", "duckdb"], capture_output=True, text=True,
                           env={**os.environ, "WH_HOME": str(disk / "wh")}, timeout=120)  # fmt: skip
        assert p.returncode == 1, p.stdout + p.stderr
        assert "Traceback" not in p.stderr, p.stderr[-3000:]
        line = next(ln for ln in p.stderr.splitlines() if ln.startswith("Error:"))
        assert "No space left on device" in line and "rollback" not in line, line
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- item 13: UX ----------------------------------------------------------------------------


@pytest.mark.clickhouse
def test_parquet_from_generate_imports_without_kind(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "feed"
    assert wh("generate", "--ticks", "3000", "--seed", "4", "--out", str(out)).exit_code == 0
    r = wh("import", str(out / "quotes.parquet"), str(out / "trades.parquet"), "--format", "parquet",
           "--engine", "duckdb")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "malformed" not in r.output and "missing column" not in r.output, r.output
    r = wh("query", "symbols", "--format", "csv", "--engine", "duckdb")
    assert r.exit_code == 0 and "BTCUSDT" in r.output
    neither = tmp_path / "neither.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1]}), neither)
    refused(wh("import", str(neither), "--format", "parquet", "--engine", "duckdb"), "--kind")


def test_query_parameter_ranges(day: Path) -> None:
    refused(wh("query", "zscore", "BTCUSDT", "--window", "0", "--engine", "duckdb"), "window", "[1,")
    refused(wh("query", "vwap_rolling", "BTCUSDT", "--window", "0", "--engine", "duckdb"), "window")
    refused(wh("plot", "zscore", "BTCUSDT", "--window", "0"), "window")
    assert wh("query", "zscore", "BTCUSDT", "--window", "1", "--limit", "3", "--engine", "duckdb").exit_code == 0


def test_an_exchange_the_symbol_does_not_trade_on_is_named(day: Path) -> None:
    out = refused(wh("query", "zscore", "BTCUSDT", "--exchange", "nosuch", "--engine", "duckdb"),
                  "no exchange 'nosuch' for BTCUSDT", "binance-futures")  # fmt: skip
    assert "unknown symbol" not in out
    refused(wh("query", "bars", "BTCUSDT", "--exchange", "nosuch", "--engine", "duckdb"),
            "no exchange 'nosuch' for BTCUSDT")  # fmt: skip
    refused(wh("query", "zscore", "NOPE", "--engine", "duckdb"), "unknown symbol 'NOPE'")


@pytest.mark.parametrize("args", [
    ("feed", "--count", "-5"), ("feed", "--malformed-every", "-1"), ("feed", "--rate", "-10"),
    ("generate", "--ticks", "-1"), ("ingest", "--batch-rows", "0", "--stop-when-idle", "1"),
    ("ingest", "--stop-when-idle", "-1"),
])  # fmt: skip
def test_negative_counts_and_rates_are_refused(home: Path, args: tuple[str, ...]) -> None:
    r = wh(*args, "--bootstrap", "127.0.0.1:1") if args[0] in ("feed", "ingest") else wh(*args)
    assert r.exit_code == 2, r.output  # click's usage error, before anything runs
    assert "Invalid value" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.kafka
@pytest.mark.parametrize(
    "command", [["feed", "--count", "1000"], ["ingest", "--stop-when-idle", "1", "--sinks", "duckdb"]]
)
def test_an_unreachable_broker_is_said_once(tmp_path: Path, command: list[str]) -> None:
    """librdkafka printed ~370 reconnect lines before `wh feed` failed at 60 s, and `wh ingest
    --stop-when-idle` exited 0. Its own stderr is read here (a subprocess: librdkafka writes to
    the file descriptor, which CliRunner does not capture)."""
    addr = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "WH_HOME": str(tmp_path / "wh")}
    t = time.perf_counter()
    p = subprocess.run([*WH, *command, "--bootstrap", addr, "--connect-timeout", "2"], capture_output=True, text=True,
                       env=env, timeout=120)  # fmt: skip
    elapsed = time.perf_counter() - t
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr[-3000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr[-3000:]
    assert lines[0].startswith(f"Error: Kafka at {addr} is unreachable") and "Connection refused" in lines[0], lines
    assert elapsed < 15, elapsed
    assert not (tmp_path / "wh" / "warehouse.duckdb").exists()  # refused before opening any sink


def test_plot_equity_after_a_short_replay_shows_the_curve(day: Path, tmp_path: Path) -> None:
    """The 4-minute Tardis day at the old fixed hourly interval was one point (drawn as an
    invisible line) on an axis running from 2018 to 2022."""
    import matplotlib.dates as mdates

    from warehouse import analytics
    from warehouse.analytics.charts import equity_figure
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    r = wh(*REPLAY[:-1], "duckdb")  # --write-to duckdb
    assert r.exit_code == 0, r.output
    png = tmp_path / "plots" / "equity.png"
    r = wh("plot", "equity", "zscore", "-o", str(png))
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import re

    points = int(re.search(r"([\d,]+) points?, every", r.output).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 100 <= points <= 400, r.output

    eng = open_engine("duckdb", get_settings(), read_only=True)
    try:
        step = analytics.equity_interval(eng, "zscore")
        table = analytics.run(eng, "equity_curve", trader="zscore", interval=step)
        hourly = analytics.run(eng, "equity_curve", trader="zscore", interval=3600)
    finally:
        eng.close()
    assert step < 60 and table.num_rows == points
    fig = equity_figure(table, trader="zscore", interval=step)
    lo, hi = fig.axes[1].get_xlim()
    assert (hi - lo) * 86_400 < 15 * 60  # the x-axis spans minutes, not years
    one = equity_figure(hourly, trader="zscore", interval=3600)
    assert hourly.num_rows == 1
    line = one.axes[0].get_lines()[0]
    assert line.get_marker() == "o"  # a lone point is drawn as a marker
    lo, hi = one.axes[0].get_xlim()
    assert hi - lo <= 2 / 24 and mdates.num2date(lo).year == 2020
