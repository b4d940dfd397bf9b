"""The address lines `wh servers` prints and writes: `KEY=value`, safe to source from a shell."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def env_lines(env: dict[str, str]) -> list[str]:
    """`KEY=value`, the value shell-quoted where needed: `QDB_CLIENT_CONF='http::addr=…;'` —
    unquoted, a shell that sources the line ends the command at the `;` and drops it.
    The quoted form also reads right in python-dotenv/pydantic-settings `.env` files."""
    return [f"{k}={shlex.quote(v)}" for k, v in env.items()]


def write_env_file(path: Path, lines: list[str]) -> None:
    """Mode 0600, replaced in one rename: a reader waiting for the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
