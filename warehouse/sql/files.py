"""Where the SQL lives: ddl/<engine>/NNN_*.sql and queries/<name>.sql at the project root."""

from __future__ import annotations

import re
from pathlib import Path

from warehouse.errors import ConfigError


def project_root() -> Path:
    from warehouse.config import get_settings

    configured = get_settings().project_root  # WH_PROJECT_ROOT
    root = configured if configured is not None else Path(__file__).resolve().parents[2]
    if not (root / "ddl").is_dir() or not (root / "queries").is_dir():
        raise ConfigError(
            f"cannot find ddl/ and queries/ under {root}; install wh from a checkout "
            "(pip install -e .) or set WH_PROJECT_ROOT"
        )
    return root


def ddl_dir(engine: str) -> Path:
    return project_root() / "ddl" / engine


def queries_dir() -> Path:
    return project_root() / "queries"


_COMMENT = re.compile(r"^\s*--.*$", re.MULTILINE)


def split_statements(text: str) -> list[str]:
    """Split a DDL file on top-level semicolons at line ends (DDL files keep ';' out of strings)."""
    body = _COMMENT.sub("", text)
    parts = re.split(r";\s*(?:\n|$)", body)
    return [p.strip() for p in parts if p.strip()]
