"""The instrument catalog (wh.instruments) and names people use for instruments.

`split_symbol` reads base and quote assets from a venue's symbol convention: separators
(`BTC-USD`, `BTC/USDT`, `BTC_USDT`, `BTC:USD`), a known quote asset at the end (`BTCUSDT`,
`ETHBTC`), six-letter currency pairs (`EURUSD`), BitMEX's `XBT` for bitcoin (`XBTUSD` = BTC),
perpetual suffixes (`BTC-PERP`, `BTCUSDT_PERP`). Anything else is its own base, quote unknown.
`resolve` turns an asset (`BTC`) into the instrument a market query means: the only one with
that base, or the one with the preferred quote asset (WH_PREFERRED_QUOTE), else an error
listing the choices.
"""

from __future__ import annotations

import re
import time
import weakref
from datetime import UTC, datetime

import pyarrow as pa

from warehouse.errors import AmbiguousInstrumentError
from warehouse.sql import queries
from warehouse.sql.engines import Engine

# longest first: USDT before USD, FDUSD before USD
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDE", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL",
                "AUD", "CAD", "CHF", "KRW", "BTC", "ETH", "BNB")  # fmt: skip
ALIASES = {"XBT": "BTC"}
_SEPARATORS = re.compile(r"[-/_:]")
_PERPETUAL = re.compile(r"([-_]?(PERP|PERPETUAL|SWAP))$", re.IGNORECASE)


def split_symbol(symbol: str, asset_class: str = "crypto") -> tuple[str, str]:
    """(base, quote) of `symbol`; quote '' when the convention does not say."""
    s = _PERPETUAL.sub("", symbol.strip().upper())
    parts = [p for p in _SEPARATORS.split(s) if p]
    if len(parts) >= 2:
        base, quote = parts[0], parts[1]
    elif asset_class == "forex" and re.fullmatch(r"[A-Z]{6}", s):
        base, quote = s[:3], s[3:]
    elif asset_class == "crypto":
        # the longest quote asset that leaves a base of 3+ letters (XBTUSD: USD, not TUSD)
        fits = [q for q in QUOTE_ASSETS if s.endswith(q) and len(s) > len(q)]
        quote = next((q for q in fits if len(s) - len(q) >= 3), fits[0] if fits else "")
        base = s[: len(s) - len(quote)] if quote else s
    else:
        base, quote = s, ""
    return ALIASES.get(base, base), ALIASES.get(quote, quote)


def instruments(engine: Engine) -> pa.Table:
    """The catalog with `base` and `quote` columns."""
    table = queries.load("instruments").run(engine, {})
    pairs = [split_symbol(s, a) for s, a in zip(table.column("symbol").to_pylist(),
                                                 table.column("asset_class").to_pylist(), strict=True)]  # fmt: skip
    return table.append_column("base", pa.array([b for b, _ in pairs], pa.string())).append_column(
        "quote", pa.array([q for _, q in pairs], pa.string())
    )


def resolve(engine: Engine, name: str, exchange: str | None = None,
            preferred_quote: str | None = None) -> tuple[str, str] | None:  # fmt: skip
    """(exchange, symbol) of the instrument `name` means when it is an asset rather than a
    symbol; None when the catalog knows no instrument with that base (QuestDB keeps no catalog)."""
    if engine.name == "questdb":
        return None
    wanted = ALIASES.get(name.strip().upper(), name.strip().upper())
    rows = [r for r in instruments(engine).to_pylist() if r["base"] == wanted and (not exchange
            or r["exchange"] == exchange)]  # fmt: skip
    if not rows:
        return None
    if len(rows) > 1 and preferred_quote:
        preferred = [r for r in rows if r["quote"] == preferred_quote.upper()]
        if len(preferred) == 1:
            rows = preferred
    if len(rows) > 1:
        choices = ", ".join(f"{r['symbol']} on {r['exchange']}" for r in rows[:12])
        more = f" and {len(rows) - 12} more" if len(rows) > 12 else ""
        raise AmbiguousInstrumentError(f"{name} names {len(rows)} instruments: {choices}{more} — give the symbol "
                                       "(and --exchange), or set WH_PREFERRED_QUOTE (e.g. USDT)")  # fmt: skip
    return rows[0]["exchange"], rows[0]["symbol"]


# per engine (held weakly: a closed engine's entries go with it): (symbol, exchange, rows) → (when, bound)
_BOUNDS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str | None, int], tuple[float, tuple[str, datetime] | None]]]
_BOUNDS = weakref.WeakKeyDictionary()
BOUND_TTL_S = 5.0


def recent_bound(engine: Engine, symbol: str, exchange: str | None, rows: int) -> tuple[str, datetime] | None:
    """(exchange, since) such that the newest `rows` quotes of the instrument are probably all
    at or after `since` — from the catalog's span and count, with an 8× margin — or None
    (not one instrument in the catalog, or too few quotes to bother). The caller checks that
    the bounded read did reach `rows` quotes and reads unbounded otherwise.

    Kept per engine for BOUND_TTL_S (5 s): a repeated query (a dashboard's poll) reads the
    catalog once, not every time. A kept bound is never wrong, only wider: newer quotes only
    move `since` later, and the caller's check catches a bound that no longer holds enough."""
    if engine.name == "questdb":
        return None
    kept = _BOUNDS.setdefault(engine, {})
    key = (symbol, exchange, rows)
    hit = kept.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < BOUND_TTL_S:
        return hit[1]
    bound = _catalog_bound(engine, symbol, exchange, rows)
    if len(kept) > 4096:
        kept.clear()
    kept[key] = (now, bound)
    return bound


def _catalog_bound(engine: Engine, symbol: str, exchange: str | None, rows: int) -> tuple[str, datetime] | None:
    found = [r for r in queries.load("instruments").run(engine, {"symbols": [symbol]}).to_pylist()
             if not exchange or r["exchange"] == exchange]  # fmt: skip
    if len(found) != 1 or found[0]["quotes"] < 16 * rows or found[0]["last_quote_ts"] is None:
        return None
    r = found[0]
    first, last = r["first_quote_ts"], r["last_quote_ts"]
    since = last - (last - first) * (8 * rows / r["quotes"])
    return r["exchange"], since if since.tzinfo else since.replace(tzinfo=UTC)
