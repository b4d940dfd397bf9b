"""Everything `wh` prints as a result: Arrow tables as a table, CSV, JSON or Parquet (to the
terminal or to `--out`), and the reports of an import and of a simulation.

Text from data (symbols, trader ids, values) is printed literally and clipped (common.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from warehouse.cli.common import Format, clip, console, err, fail, output_file
from warehouse.pipeline import ImportReport


def check_output(fmt: Format, out: Path | None) -> None:
    """Refuse a bad `--out` before the query runs (missing folders are created); Parquet is
    binary: it goes to a file or a pipe, never to a terminal."""
    if out is not None:
        output_file(out)
    elif fmt == Format.parquet and sys.stdout.isatty():
        raise fail("--format parquet writes binary: give --out PATH.parquet or redirect stdout")


def emit(table: pa.Table, fmt: Format, title: str, out: Path | None = None) -> None:
    """Print (or write to `out`) a result as a table, CSV, JSON or Parquet."""
    check_output(fmt, out)
    if fmt == Format.csv:
        table = csv_ready(table)
    try:
        if fmt == Format.parquet:
            import pyarrow.parquet as pq

            pq.write_table(table, out if out is not None else sys.stdout.buffer, compression="zstd")
        elif out is not None:
            with open(out, "w", encoding="utf-8") as fh:
                write(table, fmt, title, Console(file=fh, width=200, markup=False, highlight=False, emoji=False))
        else:
            write(table, fmt, title, console)
    except OSError as exc:
        raise fail(f"--out {str(out)!r}: cannot write: {exc.strerror or exc}") from None
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise fail(f"cannot write the result as {fmt}: {exc}; try --format json or parquet") from None
    if out is not None:
        err.print(f"{out}: {table.num_rows:,} rows")


def write(table: pa.Table, fmt: Format, title: str, where: Console) -> None:
    """`table` as text on `where`: CSV, JSON (one array of objects) or a rich table."""
    if fmt == Format.csv:
        import pyarrow.csv as pacsv

        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf)
        where.file.write(buf.getvalue().to_pybytes().decode())
        where.file.flush()
    elif fmt == Format.json:
        where.file.write(json.dumps(table.to_pylist(), default=json_default) + "\n")
    else:
        t = Table(title=title, title_justify="left")
        for name in table.column_names:
            t.add_column(name, justify="right" if not pa.types.is_string(table.schema.field(name).type) else "left")
        for row in table.to_pylist():
            t.add_row(
                *["" if v is None else (f"{v:.6f}" if isinstance(v, float) else clip(str(v))) for v in row.values()]
            )
        where.print(t)


def csv_ready(table: pa.Table) -> pa.Table:
    """CSV has no nested values: list, map and struct columns become JSON text (`[1, 2]`, `{"k": 1}`)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            values = [None if v is None else json.dumps(_plain(v, field.type), default=json_default)
                      for v in table.column(i).to_pylist()]  # fmt: skip
            table = table.set_column(i, pa.field(field.name, pa.string()), pa.array(values, pa.string()))
    return table


def _plain(value: Any, type_: pa.DataType) -> Any:
    """A nested Arrow value as JSON-ready Python: maps as objects (keys as text), structs as objects."""
    if value is None:
        return None
    if pa.types.is_map(type_):
        return {_key(k, type_.key_type): _plain(v, type_.item_type) for k, v in value}
    if pa.types.is_struct(type_):
        return {type_.field(j).name: _plain(value.get(type_.field(j).name), type_.field(j).type)
                for j in range(type_.num_fields)}  # fmt: skip
    if isinstance(type_, (pa.ListType, pa.LargeListType, pa.FixedSizeListType)):
        return [_plain(v, type_.value_type) for v in value]
    return value


def _key(key: Any, type_: pa.DataType) -> str:
    if isinstance(key, (str, bytes)):
        return json_default(key)
    return json.dumps(_plain(key, type_), default=json_default)


def json_default(value: Any) -> str:
    """Text for what JSON has no type for: times (ISO 8601), bytes (UTF-8), decimals and durations."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def print_import_report(report: ImportReport) -> None:
    """Per engine: rows read, stored (new), already stored, rejected, gap events; rejects by rule; speed."""
    t = Table(title=f"{report.source}", title_justify="left")
    t.add_column("engine")
    t.add_column("rows read", justify="right")
    t.add_column("stored (new)", justify="right")
    t.add_column("already stored", justify="right")
    t.add_column("rejected", justify="right")
    t.add_column("gap events", justify="right")
    for name, counts in report.sinks.items():
        t.add_row(
            name,
            f"{report.rows_read:,}",
            f"{report.stored(name):,}",
            f"{report.already(name):,}",
            f"{report.rows_rejected:,} (new {counts.stored.get('rejects', 0):,})",
            f"{report.gaps:,}",
        )
    console.print(t)
    if report.rejected:
        console.print("rejects by rule: " + ", ".join(f"{k}={v:,}" for k, v in sorted(report.rejected.items())))
    console.print(f"{report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s over {report.seconds:.2f} s")


def print_simulation(rows: Iterable[Mapping[str, Any]]) -> None:
    """One line per trader of `warehouse.sim.run.summary`: orders, fills, costs, P&L, drawdown, rejects."""
    t = Table(title="simulation", title_justify="left")
    for col in ("trader", "strategy", "orders", "fills", "fees", "slippage", "P&L", "max drawdown", "rejects"):
        t.add_column(col, justify="left" if col in ("trader", "strategy", "rejects") else "right")
    for row in rows:
        rejects = ", ".join(f"{k}={v}" for k, v in row["rejects"].items())
        if row["halted"]:
            rejects = (rejects + "; " if rejects else "") + f"HALTED: {row['halted']}"
        t.add_row(str(row["trader"]), str(row["strategy"]), f"{row['orders']:,}", f"{row['fills']:,}",
                  f"{row['fees']:,.2f}", f"{row['slippage']:,.2f}", f"{row['pnl']:,.2f}",
                  f"{row['max_drawdown']:.2%}", rejects)  # fmt: skip
    console.print(t)
