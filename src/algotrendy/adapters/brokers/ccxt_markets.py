"""A ccxt exchange's spot markets: the platform's symbols (``BTCUSDT``) against ccxt's unified
ones (``BTC/USDT``), the symbols watched for fills and events, and each market's trading rules.

The platform spells a pair base + quote in ccxt's unified currency codes (so Kraken's ``XBTUSDT``
is ``BTCUSDT`` too); the exchange's own id (``BTCUSDT``) and ccxt's ``BTC/USDT`` are accepted as
well. ``index`` builds both maps once the markets are loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import ccxt
import structlog

from algotrendy.core.venue import InstrumentRules, VenueDataError

from ._validate import dec
from .ccxt_http import CcxtClient, short

log = structlog.get_logger(__name__)


def precision_step(value: Any, mode: int, what: str) -> Decimal | None:
    """ccxt's ``market['precision'][...]`` as a ``Decimal`` step: ``TICK_SIZE`` gives the step
    itself, ``DECIMAL_PLACES`` a number of places (2 -> 0.01); ``SIGNIFICANT_DIGITS`` has no
    fixed step (``None``)."""
    if value is None or mode == ccxt.SIGNIFICANT_DIGITS:
        return None
    number = dec(value, what, optional=True, positive=mode == ccxt.TICK_SIZE)
    if number is None:
        return None
    if mode == ccxt.DECIMAL_PLACES:
        if number != number.to_integral_value():
            raise VenueDataError(f"venue answer has a fractional number of decimal places for {what}")
        return Decimal(1).scaleb(-int(number))
    return number


def positive_or_none(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


class CcxtMarkets:
    """The symbol maps of one exchange and the platform symbols watched (insertion ordered)."""

    def __init__(self, client: CcxtClient, symbols: Iterable[str]) -> None:
        self._client = client
        self.to_unified: dict[str, str] = {}
        self.to_platform: dict[str, str] = {}
        self.watch: dict[str, None] = dict.fromkeys(symbols)

    def index(self) -> None:
        """Build the maps from the loaded markets; the watched symbols in the platform's spelling."""
        markets: Mapping[str, Any] = self._client.ex.markets or {}
        chosen = [m for m in markets.values() if m.get("spot")] or list(markets.values())
        chosen.sort(key=lambda m: m.get("active") is False)  # active markets win a clash
        for market in chosen:
            base, quote, unified = market.get("base"), market.get("quote"), market.get("symbol")
            if not (isinstance(base, str) and isinstance(quote, str) and isinstance(unified, str)):
                continue
            platform = (base + quote).upper()
            self.to_unified.setdefault(platform, unified)
            self.to_platform.setdefault(unified, platform)
        watch, self.watch = list(self.watch), {}
        for symbol in watch:
            unified = self.resolve(symbol)
            if unified is None:
                log.warning("venue.unknown_watch_symbol", venue=self._client.name, symbol=symbol)
            else:
                self.watch.setdefault(self.to_platform[unified], None)

    def resolve(self, symbol: str) -> str | None:
        """ccxt's unified symbol for the platform's (or the exchange's, or ccxt's) spelling."""
        if symbol in self.to_unified:
            return self.to_unified[symbol]
        if symbol in self.to_platform:
            return symbol
        by_id: Mapping[str, Any] = self._client.ex.markets_by_id or {}
        found = by_id.get(symbol)
        if found:
            spot = [m for m in found if m.get("spot")] or list(found)
            unified = spot[0].get("symbol")
            return unified if unified in self.to_platform else None
        return None

    def platform(self, unified: Any) -> str:
        """The platform's symbol of a market named in a venue answer."""
        if not isinstance(unified, str) or unified not in self.to_platform:
            raise VenueDataError(f"venue answer names an unknown market {short(unified, 60)}")
        return self.to_platform[unified]

    def market(self, unified: str) -> Mapping[str, Any]:
        market: Mapping[str, Any] = self._client.ex.markets[unified]
        return market

    def targets(self) -> list[str | None]:
        """What to ask for trades per request: each watched market where the exchange needs a
        symbol (Binance), else ``None`` (every symbol at once)."""
        if not self._client.binance:
            return [None]
        return [self.to_unified[s] for s in self.watch if s in self.to_unified]

    def rules(self, unified: str) -> InstrumentRules:
        market = self.market(unified)
        mode = int(self._client.ex.precisionMode)
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        what = f"{unified} rules"
        return InstrumentRules(
            symbol=self.to_platform[unified],
            base=str(market.get("base")),
            quote=str(market.get("quote")),
            min_quantity=positive_or_none(dec(amount.get("min"), f"{what} min amount", optional=True)),
            quantity_step=precision_step(precision.get("amount"), mode, f"{what} amount precision"),
            tick_size=precision_step(precision.get("price"), mode, f"{what} price precision"),
            min_notional=positive_or_none(dec(cost.get("min"), f"{what} min cost", optional=True)),
            tradable=market.get("active") is not False,
        )
