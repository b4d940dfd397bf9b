"""One error root for everything `wh` raises on purpose.

    WarehouseError                 root: the CLI prints "Error: <message>" and exits 1
    ├── ConfigError                bad settings / environment
    │   └── ToolMissing            Java or Maven missing for the local servers (tests skip on it outside CI)
    ├── KafkaError                 the Kafka cluster refused or failed (produce, fatal consumer error)
    │   └── BrokerUnreachableError no metadata from the bootstrap servers within the timeout
    ├── SourceError                a file or feed that cannot be read at all (whole-file problem)
    │   └── MissingColumnError     a required column is absent
    ├── SanitizeError              a rule whose policy is "raise" fired
    ├── SinkError                  a storage engine refused or failed (driver error translated)
    │   └── RowRefusedError        the engine refused one row of a write (QuestDB 4xx: a type
    │                              conflict); caught by the sink, which files that row as a reject
    ├── MigrationError             DDL could not be applied, or an applied file was changed
    └── QueryError                 a named query failed or got bad parameters
        ├── UnknownQueryError      no such query file
        ├── UnknownSymbolError     the symbol has no rows
        ├── UnknownVenueError      the symbol does not trade on the exchange given
        ├── AmbiguousVenueError    the symbol trades on several exchanges and none was given
        ├── AmbiguousInstrumentError  an asset (BTC) names several instruments and none was chosen
        ├── UnsupportedSQLError    the SQL cannot be translated faithfully to the target engine
        ├── RefusedSQLError        `wh sql` refused a statement (not one read-only query) or hit a limit
        └── ReplayOrderError       the receipt clock met a tick received more than max_skew before its event time
    SimulationError                a simulation setting that cannot give a meaningful run (cash, limits, intervals)

    OrderRejected                  the simulator refused an order; `.code` is the reject reason
        ├── ExchangeClosed         EXCHANGE_CLOSED: outside the asset class's session
        ├── InsufficientMargin     INSUFFICIENT_MARGIN: gross exposure would pass 2 × NAV
        ├── ConcentrationLimit     CONCENTRATION_LIMIT: one symbol would pass 25 % of NAV
        ├── LiquidityHalt          LIQUIDITY_HALT: no (fresh) quote or no displayed size
        ├── PostOnlyWouldTake      POST_ONLY_WOULD_TAKE: a post-only order would cross
        └── StrategyHalted         KILL_SWITCH: the watchdog halted the strategy

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


class ToolMissing(ConfigError):
    """Java or Maven is not installed (the tests skip on this outside CI; nothing else is a skip)."""


class KafkaError(WarehouseError):
    pass


class BrokerUnreachableError(KafkaError):
    """No metadata from the bootstrap servers within the timeout."""


class RowRefusedError(SinkError):
    """A write was refused because of one of its rows (QuestDB answers HTTP 400 with the line);
    the request stored nothing. `line` is 1-based within the request, when the engine says."""

    def __init__(self, engine: str, message: str, *, line: int | None = None, detail: str = "") -> None:
        self.line = line
        self.detail = detail or message  # the engine's own text, for the reject's reason
        super().__init__(engine, message)


class MigrationError(WarehouseError):
    pass


class QueryError(WarehouseError):
    pass


class UnknownQueryError(QueryError):
    pass


class UnknownSymbolError(QueryError):
    pass


class UnknownVenueError(QueryError):
    pass


class AmbiguousVenueError(QueryError):
    """The symbol is on several exchanges (two books) and the operation needs one: a market
    query, or the simulator over a range where both venues have ticks."""


class AmbiguousInstrumentError(QueryError):
    """An asset given instead of a symbol (`wh query zscore BTC`) matches several instruments
    of the catalog and no preferred quote asset picks one."""


class UnsupportedSQLError(QueryError):
    pass


class RefusedSQLError(QueryError):
    pass


class ReplayOrderError(QueryError):
    """The receipt clock met a tick received more than max_skew before its event time."""


class SimulationError(WarehouseError):
    """Raised before a run starts: NaN cash, for one, passed every risk check and gave NaN NAVs."""


class OrderRejected(WarehouseError):
    code = "REJECTED"

    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        self.order_id = order_id
        super().__init__(f"{self.code}: {message}")


class ExchangeClosed(OrderRejected):
    code = "EXCHANGE_CLOSED"


class InsufficientMargin(OrderRejected):
    code = "INSUFFICIENT_MARGIN"


class ConcentrationLimit(OrderRejected):
    code = "CONCENTRATION_LIMIT"


class LiquidityHalt(OrderRejected):
    code = "LIQUIDITY_HALT"


class PostOnlyWouldTake(OrderRejected):
    code = "POST_ONLY_WOULD_TAKE"


class StrategyHalted(OrderRejected):
    code = "KILL_SWITCH"
