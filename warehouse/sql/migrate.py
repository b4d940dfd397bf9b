"""`wh migrate`: apply ddl/<engine>/NNN_*.sql in order, once each, and remember checksums.

Applied files are recorded in `wh.schema_migrations` (version, name, sha256). Re-running
applies only new files; a file whose content changed after it was applied is refused —
write a new NNN_*.sql instead of editing history.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from warehouse.errors import MigrationError, WarehouseError
from warehouse.sql.engines import Engine
from warehouse.sql.files import ddl_dir, split_statements

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_PLACEHOLDER = re.compile(r"\{(on_cluster|merge_tree|aggregating_merge_tree|replacing_merge_tree|cluster)\}")

_BOOTSTRAP = {
    "duckdb": [
        "CREATE SCHEMA IF NOT EXISTS wh",
        "CREATE TABLE IF NOT EXISTS wh.schema_migrations (version INTEGER NOT NULL, "
        "name VARCHAR NOT NULL, checksum VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)",
    ],
    "clickhouse": [
        "CREATE DATABASE IF NOT EXISTS wh",
        "CREATE TABLE IF NOT EXISTS wh.schema_migrations (version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version",
    ],
    # QuestDB: wh.schema_migrations is wh_schema_migrations (the adapter maps the name); no
    # designated timestamp, so not a WAL table: a recorded migration is visible at once
    "questdb": [
        "CREATE TABLE IF NOT EXISTS wh.schema_migrations (version INT, name VARCHAR, checksum VARCHAR, "
        "applied_at TIMESTAMP)",
    ],
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str


def discover(engine: str, directory: Path | None = None) -> list[Migration]:
    directory = directory or ddl_dir(engine)
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNN_description.sql")
        found.append(Migration(int(m.group(1)), path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migration files share a version number")
    return found


def applied(engine: Engine) -> dict[int, tuple[str, str]]:
    rows = engine.query("SELECT version, name, checksum FROM wh.schema_migrations").to_pylist()
    return {int(r["version"]): (r["name"], r["checksum"]) for r in rows}


def render(text: str, values: dict[str, str]) -> str:
    """A migration's placeholders ({on_cluster}, {merge_tree}, {aggregating_merge_tree},
    {replacing_merge_tree} (its version column: `version`), {cluster}) filled in; other
    braces (ClickHouse's own macros such as {shard}) are left alone."""
    if not values:
        return text
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def migrate(engine: Engine, directory: Path | None = None) -> list[str]:
    """Apply pending migrations wherever the engine keeps its tables (every node of a
    ClickHouse cluster); return the names applied (empty when up to date)."""
    directory = directory or ddl_dir(engine.ddl_name)
    names: list[str] = []
    for target, values in engine.ddl_targets():
        try:
            names += [n for n in _migrate_one(target, directory, values) if n not in names]
        finally:
            if target is not engine:
                target.close()
    return names


def _migrate_one(engine: Engine, directory: Path, values: dict[str, str]) -> list[str]:
    for stmt in _BOOTSTRAP[engine.name]:
        engine.command(stmt)
    done = applied(engine)
    pending = []
    for mig in discover(engine.ddl_name, directory):
        if mig.version in done:
            name, checksum = done[mig.version]
            if checksum != mig.checksum:
                raise MigrationError(
                    f"{engine.name}: {mig.name} was applied (as {name}) and has changed since; "
                    "applied migrations are immutable — revert the edit and add a new NNN_*.sql"
                )
            continue
        pending.append(mig)
    if not pending and engine.name == "questdb":
        _check_hot_tables(engine)
    names = []
    for mig in pending:
        for stmt in split_statements(render(mig.path.read_text(), values)):
            try:
                engine.command(stmt)
            except WarehouseError as exc:
                raise MigrationError(f"{engine.name}: {mig.name} failed: {exc}") from exc
        engine.insert(
            "wh.schema_migrations",
            pa.table(
                {
                    "version": pa.array([mig.version], pa.uint32()),
                    "name": [mig.name],
                    "checksum": [mig.checksum],
                    "applied_at": pa.array([datetime.now(UTC)], pa.timestamp("ms", tz="UTC")),
                }
            ),
        )
        names.append(mig.name)
    return names


def _check_hot_tables(engine: Engine) -> None:
    """QuestDB keeps no transactional DDL: a table dropped behind wh's back leaves the migration
    recorded as applied. "Up to date" would then send the user back to a sink that refuses to
    open for the missing table, so say what is missing and how to re-create it."""
    from warehouse.sql.engines.questdb import HOT_TABLES

    present = set(engine.query("SELECT table_name FROM tables()").column(0).to_pylist())
    missing = sorted(f"wh.{t}" for t in HOT_TABLES if f"wh_{t}" not in present)
    if missing:
        raise MigrationError(f"questdb: {', '.join(missing)} missing although the migrations that create them are "
                             "recorded as applied (dropped outside wh?): `DROP TABLE wh_schema_migrations` on that "
                             "QuestDB, then `wh migrate --engine questdb` creates what is missing (the DDL is "
                             "CREATE … IF NOT EXISTS)")  # fmt: skip
