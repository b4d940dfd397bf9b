"""Base and quote assets from venues' symbol conventions (the instrument catalog's names)."""

from __future__ import annotations

import pytest

from warehouse.analytics.instruments import split_symbol


@pytest.mark.parametrize(
    ("symbol", "asset_class", "expected"),
    [
        ("BTCUSDT", "crypto", ("BTC", "USDT")),  # Binance
        ("ETHBTC", "crypto", ("ETH", "BTC")),
        ("BTC-USD", "crypto", ("BTC", "USD")),  # Coinbase
        ("BTC/USDT", "crypto", ("BTC", "USDT")),  # ccxt
        ("btc_usdt", "crypto", ("BTC", "USDT")),  # Gate, lower case
        ("XBTUSD", "crypto", ("BTC", "USD")),  # BitMEX's bitcoin
        ("XBT/EUR", "crypto", ("BTC", "EUR")),  # Kraken
        ("BTC-PERP", "crypto", ("BTC", "")),  # FTX-style perpetual: no quote in the name
        ("BTCUSDT_PERP", "crypto", ("BTC", "USDT")),
        ("BTC-PERPETUAL", "crypto", ("BTC", "")),  # Deribit
        ("1000PEPEUSDT", "crypto", ("1000PEPE", "USDT")),
        ("FDUSDUSDT", "crypto", ("FDUSD", "USDT")),
        ("USDT", "crypto", ("USDT", "")),  # a quote asset alone is its own base
        ("EURUSD", "forex", ("EUR", "USD")),
        ("USDJPY", "forex", ("USD", "JPY")),
        ("AAPL", "equities", ("AAPL", "")),
        ("CL", "commodities", ("CL", "")),
    ],
)
def test_split_symbol(symbol: str, asset_class: str, expected: tuple[str, str]) -> None:
    assert split_symbol(symbol, asset_class) == expected
