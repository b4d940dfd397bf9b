"""QuestDB without a server: ILP bytes per record type (the client's Buffer), the DDL against
records.py, the wh.<t> ↔ wh_<t> mapping, literals, QDB_CLIENT_CONF, error classification, and
the sink's bisection of refused rows (a fake engine that refuses like QuestDB does)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse.errors import ConfigError, QueryError, RowRefusedError, SinkError
from warehouse.records import KEY_COLUMNS, SCHEMAS
from warehouse.sql.engines.questdb import (
    HOT_TABLES,
    SYMBOL_COLUMNS,
    QuestDBEngine,
    ilp_rows,
    ilp_text,
    literal,
    qdb_table,
    render,
    rewrite,
    wh_table,
)

ROOT = Path(__file__).resolve().parents[2]
T = 1_704_153_600_000_000_001  # ns: the last digit must survive


def quotes(*rows: dict) -> pa.Table:
    base = {"timestamp": T, "received_at": T + 100_000_002, "exchange": "binance", "symbol": "BTCUSDT",
            "asset_class": "crypto", "bid": 42000.5, "ask": 42001.0, "bid_size": 1.25, "ask_size": 0.5, "seq": 7}  # fmt: skip
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=SCHEMAS["market_ticks"])


def trades(*rows: dict) -> pa.Table:
    base = {"timestamp": T, "received_at": T + 1, "exchange": "binance", "symbol": "ETHUSDT", "asset_class": "crypto",
            "trade_id": "t1", "side": "buy", "price": 2000.0, "size": 0.1, "seq": None}  # fmt: skip
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=SCHEMAS["trades"])


def test_ilp_bytes_per_record_type() -> None:
    from questdb._client import Buffer

    from warehouse.sinks.questdb import reject_rows

    # quote with a sequence number and sizes; a quote without (NULL fields are left out of the line)
    assert ilp_text(
        "wh.market_ticks",
        quotes(
            {},
            {
                "exchange": "ebs",
                "symbol": "EUR USD",
                "asset_class": "forex",
                "bid": 1.1,
                "ask": 1.2,
                "bid_size": None,
                "ask_size": None,
                "seq": None,
            },
        ),
    ) == (
        "wh_market_ticks,exchange=binance,symbol=BTCUSDT,asset_class=crypto received_at=1704153600100000t,"
        "bid=42000.5,ask=42001.0,bid_size=1.25,ask_size=0.5,seq=7i 1704153600000000001\n"
        "wh_market_ticks,exchange=ebs,symbol=EUR\\ USD,asset_class=forex received_at=1704153600100000t,"
        "bid=1.1,ask=1.2 1704153600000000001\n"
    )
    # trade: side is a symbol, trade_id a string field (quotes, backslashes and newlines escaped)
    assert ilp_text("wh.trades", trades({"trade_id": 'a"b,c=d\\e\nf'})) == (
        "wh_trades,exchange=binance,symbol=ETHUSDT,asset_class=crypto,side=buy received_at=1704153600000000t,"
        'trade_id="a\\"b,c=d\\\\e\\\nf",price=2000.0,size=0.1 1704153600000000001\n'
    )
    # reject without an event time: filed at the epoch (the designated timestamp cannot be NULL)
    rej = pa.Table.from_pylist([{"rejected_at": T, "source": "kafka:ticks/0", "source_offset": 12, "kind": "quote",
                                 "rule": "malformed", "reason": "not JSON", "exchange": None, "symbol": None,
                                 "timestamp": None, "raw": "{not json"}], schema=SCHEMAS["rejects"])  # fmt: skip
    assert ilp_text("wh.rejects", reject_rows(rej)) == (
        "wh_rejects,source=kafka:ticks/0,kind=quote,rule=malformed rejected_at=1704153600000000t,"
        'source_offset=12i,reason="not JSON",raw="{not json" 0\n'
    )
    # what the sender negotiates with 9.3.4 (protocol 2+): nanosecond field times, binary doubles
    buf = Buffer(protocol_version=2)
    ilp_rows(buf, "wh.market_ticks", quotes({"seq": None, "bid_size": None, "ask_size": None}))
    line = bytes(buf)
    assert line.startswith(b"wh_market_ticks,exchange=binance,symbol=BTCUSDT,asset_class=crypto "
                           b"received_at=1704153600100000003n,bid==")  # fmt: skip
    assert line.endswith(b" 1704153600000000001n\n") and b"seq=" not in line and b"bid_size" not in line


def _ddl_tables() -> dict[str, str]:
    text = (ROOT / "ddl" / "questdb" / "001_ticks.sql").read_text()
    text = re.sub(r"--.*", "", text)
    return {m.group(1): m.group(2) for m in re.finditer(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\n\)(.*?);", text, re.S)} | {
        f"{m.group(1)}#tail": m.group(3) for m in re.finditer(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\n\)(.*?);", text, re.S)
    }  # fmt: skip


def test_ddl_mirrors_records_and_keys_include_the_event_time() -> None:
    ddl = _ddl_tables()
    for table in HOT_TABLES:
        name = qdb_table(f"wh.{table}")
        cols = dict(re.findall(r"^\s*(\w+)\s+(\w+)", ddl[name], re.M))
        assert set(cols) == set(SCHEMAS[table].names), table
        assert {c for c, t in cols.items() if t == "SYMBOL"} == set(SYMBOL_COLUMNS[table]), table
        assert (
            cols["timestamp"] == "TIMESTAMP_NS"
            and cols["received_at" if table != "rejects" else "rejected_at"] == "TIMESTAMP_NS"
        )
        tail = ddl[f"{name}#tail"]
        assert "TIMESTAMP(timestamp)" in tail and "WAL" in tail and "PARTITION BY" in tail, tail
        m = re.search(r"DEDUP UPSERT KEYS\(([^)]*)\)", tail)
        assert m is not None, tail
        keys = {k.strip() for k in m.group(1).split(",")}
        assert "timestamp" in keys and set(KEY_COLUMNS[table]) <= keys, (table, keys)


def test_wh_names_map_to_questdb_names_in_one_place() -> None:
    assert qdb_table("wh.market_ticks") == "wh_market_ticks" and wh_table("wh_trades") == "wh.trades"
    assert rewrite("SELECT 'wh.trades', \"wh.trades\" FROM wh.trades JOIN wh.rejects") == \
        "SELECT 'wh.trades', \"wh.trades\" FROM wh_trades JOIN wh_rejects"  # fmt: skip
    assert rewrite("SELECT * FROM wh.fills") == "SELECT * FROM wh.fills"  # not a QuestDB table: left to fail
    with pytest.raises(ConfigError, match="hot tier"):
        qdb_table("wh.fills")
    with pytest.raises(ConfigError):
        qdb_table("other.market_ticks")


def test_bound_values_become_safe_typed_literals() -> None:
    from datetime import UTC, date, datetime, timedelta, timezone

    assert literal("it's", "String") == "'it''s'"
    assert literal("a\\b", "String") == "'a\\b'"  # QuestDB SQL has no backslash escapes
    assert literal(5, "UInt32") == "5" and literal(1.5, "Float64") == "1.5"
    assert literal(datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=1))), "DateTime64(9, 'UTC')") == \
        "'2024-01-02T02:04:05.000006Z'::timestamp"  # fmt: skip
    assert literal(date(2024, 1, 2), "Date") == "'2024-01-02T00:00:00.000000Z'::timestamp"
    assert literal(["a", "b'"], "Array(String)") == "'a', 'b'''"
    assert render("x = {s:String} AND t < {t:DateTime64(9)}", {"s": "x'); DROP TABLE wh_trades; --",
                                                                "t": datetime(2024, 1, 1, tzinfo=UTC)}) == \
        "x = 'x''); DROP TABLE wh_trades; --' AND t < '2024-01-01T00:00:00.000000Z'::timestamp"  # fmt: skip
    for bad, type_ in (
        ("a\x00b", "String"),
        ("esc\x1b[0m", "String"),
        (float("nan"), "Float64"),
        ([], "Array(String)"),
    ):
        with pytest.raises(QueryError):
            literal(bad, type_)
    with pytest.raises(QueryError, match="no value"):
        render("{missing:String}", {})


def test_client_conf_is_parsed_and_never_shown() -> None:
    from warehouse.config import QuestDBSettings, parse_questdb_conf

    a = parse_questdb_conf("http::addr=db.example:9100;username=admin;password=s3cr;;et;")
    assert (a.scheme, a.host, a.port, a.username) == ("http", "db.example", 9100, "admin")
    assert a.password is not None and a.password.get_secret_value() == "s3cr;et"
    assert "s3cr" not in repr(a) and a.where == "http://db.example:9100"
    assert parse_questdb_conf("https::addr=[::1]:9000;tls_verify=unsafe_off;").http_url == "https://[::1]:9000"
    for conf, msg in (("tcp::addr=h:9009;", "TCP"), ("addr=h:9000;", "protocol"), ("http::addr=;", "addr"),
                      ("http::addr=h:1;addr=h:2;", "twice")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            parse_questdb_conf(conf)
    with pytest.raises(ConfigError, match="QDB_CLIENT_CONF"):
        QuestDBSettings(QDB_CLIENT_CONF=None).address()
    try:
        parse_questdb_conf("http::addr=user:hunter2@h;")
    except ConfigError as exc:
        assert "hunter2" not in str(exc)


def test_flush_errors_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDB_CLIENT_CONF", "http::addr=127.0.0.1:9;")
    eng = QuestDBEngine()
    row = eng._translate_flush("wh_trades", Exception(
        'Could not flush buffer: {"code":"invalid","message":"failed to parse line protocol:errors encountered on '
        'line(s):\\nerror in line 2: table: wh_trades, column: seq; line protocol value: 1099511627776 is out bounds '
        'of column type: INT","line":2,"errorId":"x-1"}'))  # fmt: skip
    assert isinstance(row, RowRefusedError) and row.line == 2
    assert (
        row.detail
        == "table: wh_trades, column: seq; line protocol value: 1099511627776 is out bounds of column type: INT"
    )
    table = eng._translate_flush("wh_trades", Exception(
        'Could not flush buffer: {"code":"invalid","message":"failed to parse line protocol:errors encountered on '
        'line(s):\\nerror in line 1: table: wh_trades; table does not exist, creating new tables is disabled",'
        '"line":1,"errorId":"x-2"}'))  # fmt: skip
    assert type(table) is SinkError and "wh migrate --engine questdb" in str(table)
    down = eng._translate_flush("wh_trades", Exception("Could not flush buffer: Could not connect to 127.0.0.1:9"))
    assert type(down) is SinkError


class FakeEngine:
    """Refuses a request at the first row whose seq is negative, naming its line (as QuestDB does)."""

    where = "fake"

    def __init__(self) -> None:
        self.stored: dict[str, list[dict]] = {}
        self.requests = 0

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        self.requests += 1
        rows = data.to_pylist()
        for i, r in enumerate(rows):
            if (r.get("seq") or 0) < 0:
                raise RowRefusedError("questdb", "refused", line=i + 1, detail=f"value {r['seq']} out of bounds")
        self.stored.setdefault(table, []).extend(rows)

    def close(self) -> None:
        pass


def test_refused_rows_are_isolated_into_rejects_and_the_rest_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    import warehouse.sinks.questdb as sink_module

    monkeypatch.setattr(sink_module, "check_schema", lambda engine: None)
    n, bad_at = 2_000, {3, 700, 701, 1_999}
    batch = trades(*({"trade_id": f"t{i}", "seq": -i if i in bad_at else i, "timestamp": T + i} for i in range(n)))
    fake = FakeEngine()
    sink = sink_module.QuestDBSink(engine=fake)  # type: ignore[arg-type]
    counts = sink.write({"trades": batch})
    stored = fake.stored["wh.trades"]
    assert [r["trade_id"] for r in stored] == [f"t{i}" for i in range(n) if i not in bad_at]  # order kept
    assert counts.stored == {"trades": n - len(bad_at), "rejects": len(bad_at)}
    rejects = fake.stored["wh.rejects"]
    assert sorted(r["reason"] for r in rejects) == sorted(
        f"QuestDB refused the row: value {-i} out of bounds" for i in bad_at
    )
    assert {r["rule"] for r in rejects} == {"questdb_refused"} and {r["source"] for r in rejects} == {
        "questdb:wh_trades"
    }
    assert all(r["raw"].startswith("wh_trades,") for r in rejects)
    assert fake.requests < 4 * len(bad_at) * 12, fake.requests  # ~k·log2(n), never a resend per row

    again = FakeEngine()  # a replay files the same rejects under the same keys (DEDUP absorbs them)
    sink_module.QuestDBSink(engine=again).write({"trades": batch})  # type: ignore[arg-type]
    key = lambda r: (r["timestamp"], r["source"], r["source_offset"], r["rule"])  # noqa: E731
    assert sorted(map(key, again.stored["wh.rejects"])) == sorted(map(key, rejects))

    many = trades(*({"trade_id": f"t{i}", "seq": -1 - i, "timestamp": T + i} for i in range(30)))
    with pytest.raises(SinkError, match="refused more than 10 rows"):
        sink_module.QuestDBSink(engine=FakeEngine(), max_refused=10).write({"trades": many})  # type: ignore[arg-type]
