"""End to end on the real engines: DuckDB file and embedded ClickHouse (chdb)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from reference import zscore_reference
from typer.testing import CliRunner

from warehouse.cli.main import app

pytestmark = [pytest.mark.integration, pytest.mark.clickhouse]
runner = CliRunner()


def wh(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def count(engine: str, table: str) -> int:
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    eng = open_engine(engine, get_settings())
    try:
        return (
            eng.query(
                f"SELECT count() AS n FROM wh.{table}"
                if engine == "clickhouse"
                else f"SELECT count(*) AS n FROM wh.{table}"
            )
            .column("n")[0]
            .as_py()
        )
    finally:
        eng.close()


def test_tardis_import_is_exact_and_idempotent_on_both_engines(home, tardis) -> None:
    quotes, trades = tardis
    for _ in range(2):
        wh("import", str(quotes), str(trades))
        for engine in ("duckdb", "clickhouse"):
            assert count(engine, "market_ticks") == 9_999
            assert count(engine, "trades") == 9_999
            assert count(engine, "rejects") == 0


def test_zscore_matches_an_exact_reference_on_both_engines(home, tardis) -> None:
    quotes, _ = tardis
    wh("import", str(quotes))
    csv = pl.read_csv(quotes).sort(["timestamp", "local_timestamp"], maintain_order=True)
    bids = csv["bid_price"].to_numpy()
    mean, std, flat = zscore_reference(bids)
    assert flat.sum() > 90  # the flat windows the seed's query gets wrong
    out = {}
    for engine in ("duckdb", "clickhouse"):
        res = wh("query", "zscore", "BTCUSDT", "--engine", engine, "--limit", "0", "--format", "json")
        rows = pl.DataFrame(json.loads(res.output)).reverse()
        assert rows.height == 9_999
        got_mean, got_std = rows["rolling_mean"].to_numpy(), rows["rolling_std"].to_numpy()
        z = rows["z_score"]
        assert np.max(np.abs(got_mean - mean) / mean) < 1e-9
        nz = ~flat
        assert np.max(np.abs(got_std[nz] - std[nz]) / std[nz]) < 1e-9
        assert np.all(got_std[flat] == 0.0)
        assert z.is_null().to_numpy().tolist() == flat.tolist()
        zr = (bids[nz] - mean[nz]) / std[nz]
        assert np.max(np.abs(z.to_numpy()[nz] - zr)) < 1e-8
        out[engine] = wh("query", "zscore", "BTCUSDT", "--engine", engine, "--format", "csv").output
    assert out["duckdb"].splitlines()[0] == '"timestamp","symbol","bid","rolling_mean","rolling_std","z_score"'
    d = pl.read_csv(out["duckdb"].encode())
    c = pl.read_csv(out["clickhouse"].encode())
    assert d.height == c.height == 100
    assert d["timestamp"].to_list() == c["timestamp"].to_list()
    for col in ("bid", "rolling_mean", "rolling_std", "z_score"):
        np.testing.assert_allclose(d[col].to_numpy().astype(float), c[col].to_numpy().astype(float), rtol=1e-12)


def test_unknown_and_hostile_symbols_are_values(home, tardis) -> None:
    quotes, _ = tardis
    wh("import", str(quotes), "--engine", "all")
    for engine in ("duckdb", "clickhouse"):
        r = wh("query", "zscore", "NOPE", "--engine", engine, ok=False)
        assert r.exit_code == 1 and "unknown symbol 'NOPE'" in r.output
        r = wh("query", "zscore", "BTC' OR '1'='1", "--engine", engine, ok=False)
        assert r.exit_code == 1 and "unknown symbol" in r.output
        assert count(engine, "market_ticks") == 9_999


def test_synthetic_faults_land_in_rejects_and_good_ticks_once(home) -> None:
    from warehouse.ingest.synthetic import FaultRates, SyntheticFeed

    feed = SyntheticFeed(
        ticks=60_000, seed=11, faults=FaultRates(bad=0.01, duplicate=0.01, out_of_order=0.01, gap=0.005)
    )
    labels = pl.concat([b.rows.select("_offset", "_expected", "_gap") for b in feed.batches()])
    n_gaps = labels.filter(pl.col("_gap") > 0).height
    n_bad = labels.filter(pl.col("_expected").is_not_null()).height
    for _ in range(2):  # idempotent
        wh(
            "generate",
            "--ticks",
            "60000",
            "--seed",
            "11",
            "--bad-rate",
            "0.01",
            "--dup-rate",
            "0.01",
            "--ooo-rate",
            "0.01",
            "--gap-rate",
            "0.005",
        )
    from warehouse.config import get_settings
    from warehouse.sql.engines import open_engine

    for engine in ("duckdb", "clickhouse"):
        assert count(engine, "market_ticks") + count(engine, "trades") == labels.height - n_bad
        eng = open_engine(engine, get_settings())
        try:
            rej = pl.from_arrow(eng.query("SELECT source_offset, rule FROM wh.rejects"))
            gaps = count(engine, "gaps")
        finally:
            eng.close()
        want = labels.filter(pl.col("_expected").is_not_null()).select(
            pl.col("_offset").alias("source_offset"), pl.col("_expected").alias("rule")
        )
        assert rej.sort("source_offset").equals(want.sort("source_offset"))
        assert gaps == n_gaps > 0


def test_bad_rows_do_not_block_the_file(home, tmp_path) -> None:
    p = tmp_path / "q.csv"
    p.write_text(
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
        "x,BTC,1582329601096000,1582329601096100,1,101,100,1\n"
        "x,BTC,1582329601097000,1582329601097100,1,NaN,100,1\n"
        "x,BTC,oops\n"
        "x,BTC,1582329601098000,1582329601098100,1,101,100.5,1\n"
    )
    r = wh("import", str(p))
    assert "rejects by rule: malformed=1, non_finite=1" in r.output
    for engine in ("duckdb", "clickhouse"):
        assert count(engine, "market_ticks") == 2
        assert count(engine, "rejects") == 2
    r = wh("import", str(tmp_path / "missing.csv"), ok=False)
    assert r.exit_code == 1 and "Error:" in r.output


def test_generic_csv_with_mapping(home, tmp_path) -> None:
    p = tmp_path / "fx.csv"
    p.write_text("time,b,a,bs,as\n2024-01-02T10:00:00Z,1.1,1.2,5,6\n2024-01-02T10:00:01Z,1.1,1.3,5,6\n")
    wh(
        "import",
        str(p),
        "--format",
        "csv",
        "--map",
        "timestamp=time",
        "--map",
        "bid=b",
        "--map",
        "ask=a",
        "--map",
        "bid_size=bs",
        "--map",
        "ask_size=as",
        "--const",
        "symbol=EURUSD",
        "--const",
        "exchange=EBS",
        "--const",
        "asset_class=forex",
    )
    assert count("duckdb", "market_ticks") == 2
    assert count("clickhouse", "market_ticks") == 2


def test_migrate_is_rerunnable_and_refuses_edited_files(home, tmp_path) -> None:
    from warehouse.config import get_settings
    from warehouse.errors import MigrationError
    from warehouse.sql.engines import open_engine
    from warehouse.sql.migrate import migrate

    wh("migrate")
    assert "up to date" in wh("migrate").output
    d = tmp_path / "ddl"
    d.mkdir()
    (d / "001_t.sql").write_text("CREATE TABLE IF NOT EXISTS wh.x1 (a BIGINT);")
    for engine in ("duckdb", "clickhouse"):
        eng = open_engine(engine, get_settings())
        try:
            if engine == "clickhouse":
                (d / "001_t.sql").write_text("CREATE TABLE IF NOT EXISTS wh.x1 (a Int64) ENGINE = Memory;")
            fresh = get_settings().home / f"m_{engine}"
            del fresh
            # a separate migrations directory against the same database: version 1 exists
            with pytest.raises(MigrationError, match="changed"):
                migrate(eng, d)
        finally:
            eng.close()
