"""One error root for everything `wh` raises on purpose.

    WarehouseError                 root: the CLI prints "Error: <message>" and exits 1
    ├── ConfigError                bad settings / environment
    ├── SourceError                a file or feed that cannot be read at all (whole-file problem)
    │   └── MissingColumnError     a required column is absent
    ├── SanitizeError              a rule whose policy is "raise" fired
    ├── SinkError                  a storage engine refused or failed (driver error translated)
    ├── MigrationError             DDL could not be applied, or an applied file was changed
    └── QueryError                 a named query failed or got bad parameters
        ├── UnknownQueryError      no such query file
        ├── UnknownSymbolError     the symbol has no rows
        ├── UnsupportedSQLError    the SQL cannot be translated faithfully to the target engine
        └── RefusedSQLError        `wh sql` refused a statement (not one read-only query) or hit a limit

Row-level problems (a malformed line, a NaN price) are *not* exceptions: they become
rows of `wh.rejects` and the rest of the file is still stored.
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Root of every error `wh` raises deliberately; messages say how to fix the problem."""


class ConfigError(WarehouseError):
    pass


class SourceError(WarehouseError):
    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class MissingColumnError(SourceError):
    def __init__(self, column: str, *, path: str | None, available: list[str]) -> None:
        self.column = column
        super().__init__(
            f"missing column {column!r} (found: {', '.join(available) or 'none'}); "
            "map it with --map FIELD=COLUMN or check the file format",
            path=path,
        )


class SanitizeError(WarehouseError):
    def __init__(self, rule: str, count: int, example: str) -> None:
        self.rule = rule
        self.count = count
        super().__init__(
            f"rule {rule!r} fired on {count} tick(s) and its policy is 'raise' "
            f"(first: {example}); use --policy {rule}=reject to quarantine them instead"
        )


class SinkError(WarehouseError):
    def __init__(self, engine: str, message: str) -> None:
        self.engine = engine
        super().__init__(f"{engine}: {message}")


class MigrationError(WarehouseError):
    pass


class QueryError(WarehouseError):
    pass


class UnknownQueryError(QueryError):
    pass


class UnknownSymbolError(QueryError):
    pass


class UnsupportedSQLError(QueryError):
    pass


class RefusedSQLError(QueryError):
    pass
