"""CovalentHQ (GoldRush) over httpx: historical token prices and wallet balances.

* ``get_blockchain_data(chain_id, token_address, start_date, end_date)`` ->
  ``PriceSeries``: one price per day from
  ``GET /v1/pricing/historical_by_addresses_v2/{chain}/{quote}/{address}/?from=&to=``.
* ``get_wallet_balances(chain_id, wallet_address)`` -> ``dict[contract address, TokenBalance]``
  from ``GET /v1/{chain}/address/{wallet}/balances_v2/``.
* ``fetch_bars("<chain_id>:<token address>", 1d, ...)`` makes Covalent a ``BarSource`` too.
  Covalent publishes a single price per day, no OHLC and no volume, so each bar has
  ``open = high = low = close = price`` and ``volume = 0``. A page is a window of ``limit`` days;
  windows without prices are stepped over up to ``end_ns``.

The key travels as ``Authorization: Bearer`` (Covalent also takes it as the basic-auth user).
Addresses are checked (``0x`` + 40 hex digits) before they reach a URL. Untrusted rows follow
``base``: a price that is null, not finite or not positive, or a bad date, is rejected and
reported; a balance item that cannot be read is left out of the dict and logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import structlog

from algotrendy.core.errors import Invalid
from algotrendy.core.market import F64, I64, AssetType, Timeframe

from ._http import HttpSource, client_error, error_text
from .base import (
    MAX_PRICE,
    BadRow,
    Parsed,
    RejectedRow,
    SourceBars,
    bad_upstream,
    build_page,
    check_timeframe,
    date_to_ns,
    integer,
    make_bars,
    ns_to_datetime,
    number,
    short,
)

log = structlog.get_logger(__name__)

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_QUOTE = re.compile(r"[A-Z]{3}")
_DAY = Timeframe.parse("1d")


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Daily prices of one token: ``ts`` at 00:00 UTC of each date, ascending."""

    chain_id: int
    token_address: str
    quote_currency: str
    ts: I64
    price: F64
    rejected: tuple[RejectedRow, ...] = ()

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class TokenBalance:
    contract_address: str
    symbol: str | None
    name: str | None
    decimals: int
    raw_balance: int
    balance: Decimal
    """``raw_balance / 10**decimals``, exact."""
    quote_rate: float | None
    quote: float | None
    native: bool
    spam: bool


class CovalentSource(HttpSource):
    NAME = "covalent"
    DEFAULT_BASE_URL = "https://api.covalenthq.com"
    DEFAULT_RATE_LIMIT = 4.0  # the free tier's 4 requests per second
    DEFAULT_PAGE_LIMIT = 365  # days per pricing request
    ASSET_TYPES = frozenset({AssetType.CRYPTO})
    TIMEFRAMES = frozenset({_DAY})

    def __init__(self, *, api_key: str, quote_currency: str = "USD", **kwargs: Any) -> None:
        if not _QUOTE.fullmatch(quote_currency):
            raise Invalid(f"{quote_currency!r} is not a currency code", field="quote_currency")
        super().__init__(headers={"Authorization": f"Bearer {api_key}"}, **kwargs)
        self._quote = quote_currency

    # ---- prices ------------------------------------------------------------------------------

    async def get_blockchain_data(
        self, chain_id: int, token_address: str, start_date: date, end_date: date
    ) -> PriceSeries:
        """Daily prices of ``token_address`` on ``chain_id`` from ``start_date`` to ``end_date``
        (both inclusive)."""
        symbol = _token_symbol(chain_id, token_address)
        if end_date < start_date:
            raise Invalid("end_date is before start_date", field="end_date")
        body = await self._get_json(
            f"/v1/pricing/historical_by_addresses_v2/{chain_id}/{self._quote}/{token_address}/",
            symbol=symbol,
            params={"from": start_date.isoformat(), "to": end_date.isoformat(), "prices-at-asc": "true"},
        )
        prices = self._prices(body, symbol, token_address)

        def parse(item: Any) -> Parsed:
            day = item.get("date") if isinstance(item, dict) else None
            if not isinstance(day, str):
                raise BadRow("date is missing")
            try:
                ts = date_to_ns(date.fromisoformat(day[:10]))
            except ValueError:
                raise BadRow(f"date is not a date: {short(day, 40)}") from None
            price = item.get("price")
            return ts, [price, price, price, price, 0.0]

        page = build_page(
            prices,
            parse,
            source=self.name,
            symbol=symbol,
            start_ns=date_to_ns(start_date),
            end_ns=date_to_ns(end_date + timedelta(days=1)),
            limit=None,
            strict=self._strict,
            names=("price",) * 4 + ("volume",),
        )
        return PriceSeries(chain_id, token_address.lower(), self._quote, page.ts, page.close, page.rejected)

    def _prices(self, body: Any, symbol: str, token_address: str) -> list[Any]:
        data = self._data(body, symbol)
        if not isinstance(data, list):
            raise bad_upstream(self.name, symbol, "'data' is not a list")
        wanted = token_address.lower()
        for item in data:
            if isinstance(item, dict) and str(item.get("contract_address", "")).lower() == wanted:
                prices = item.get("prices") or []
                if not isinstance(prices, list):
                    raise bad_upstream(self.name, symbol, "'prices' is not a list")
                return prices
        return []

    def _data(self, body: Any, symbol: str) -> Any:
        if not isinstance(body, dict):
            raise bad_upstream(self.name, symbol, "the answer is not an object")
        if body.get("error") is True:
            code = body.get("error_code")
            if isinstance(code, int) and 400 <= code < 500:
                raise client_error(self.name, code, error_text(body), symbol)
            raise bad_upstream(self.name, symbol, f"error flag set: {error_text(body)}")
        return body.get("data")

    # ---- bars --------------------------------------------------------------------------------

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> SourceBars:
        """``symbol`` is ``"<chain_id>:<token address>"``, e.g. ``"1:0x2260...c599"``."""
        check_timeframe(self.name, timeframe, self.TIMEFRAMES)
        chain, _, address = symbol.partition(":")
        if not chain.isdigit():
            raise Invalid(f"{short(symbol, 60)} is not '<chain_id>:<token address>'", field="symbol")
        chain_id = int(chain)
        _token_symbol(chain_id, address)
        limit = min(limit or self.page_limit, self.page_limit)
        end = end_ns if end_ns is not None else self._now_ns()
        first = ns_to_datetime(start_ns).date()
        if date_to_ns(first) < start_ns:
            first += timedelta(days=1)
        last_day = ns_to_datetime(end - 1).date()
        while first <= last_day:
            window_last = min(last_day, first + timedelta(days=limit - 1))
            series = await self.get_blockchain_data(chain_id, address, first, window_last)
            if len(series) or series.rejected:
                rows = [
                    (int(t), float(p), float(p), float(p), float(p), 0.0)
                    for t, p in zip(series.ts, series.price, strict=True)
                ]
                return make_bars(rows, rejected=series.rejected)
            first = window_last + timedelta(days=1)
            if first <= last_day:
                await self._pause()
        return make_bars([])

    # ---- balances ----------------------------------------------------------------------------

    async def get_wallet_balances(self, chain_id: int, wallet_address: str) -> dict[str, TokenBalance]:
        """Token balances of ``wallet_address`` keyed by contract address (lower case)."""
        symbol = _token_symbol(chain_id, wallet_address, field="wallet_address")
        body = await self._get_json(
            f"/v1/{chain_id}/address/{wallet_address}/balances_v2/",
            symbol=symbol,
            params={"quote-currency": self._quote, "nft": "false"},
        )
        data = self._data(body, symbol)
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise bad_upstream(self.name, symbol, "'data.items' is not a list")
        out: dict[str, TokenBalance] = {}
        bad: list[RejectedRow] = []
        for item in items:
            try:
                balance = _balance(item)
            except (BadRow, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                if self._strict:
                    raise bad_upstream(self.name, symbol, f"{exc} in item {short(item)}") from exc
                bad.append(RejectedRow(ts=None, reason=str(exc), raw=short(item)))
                continue
            out[balance.contract_address] = balance
        if bad:
            log.warning(
                "sources.rows_rejected",
                source=self.name,
                symbol=symbol,
                count=len(bad),
                first_reason=bad[0].reason,
            )
        return out


def _token_symbol(chain_id: int, address: str, *, field: str = "token_address") -> str:
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise Invalid(f"chain id {chain_id!r} is not a positive integer", field="chain_id")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise Invalid(f"{short(address, 60)} is not an address (0x + 40 hex digits)", field=field)
    return f"{chain_id}:{address.lower()}"


def _optional_number(value: object, name: str) -> float | None:
    if value is None:
        return None
    out = number(value, name)
    if not 0 <= out <= MAX_PRICE * 1e3:
        raise BadRow(f"{name} is out of range ({out!r})")
    return out


def _balance(item: Any) -> TokenBalance:
    if not isinstance(item, dict):
        raise BadRow("item is not an object")
    address = item.get("contract_address")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise BadRow(f"contract_address is not an address: {short(address, 50)}")
    decimals = integer(item.get("contract_decimals"), "contract_decimals")
    if not 0 <= decimals <= 77:
        raise BadRow(f"contract_decimals out of range ({decimals})")
    raw = item.get("balance")
    if not isinstance(raw, str) or not raw.isdigit():
        raise BadRow(f"balance is not a non-negative integer string: {short(raw, 50)}")
    raw_balance = int(raw)
    symbol, name = item.get("contract_ticker_symbol"), item.get("contract_name")
    return TokenBalance(
        contract_address=address.lower(),
        symbol=symbol if isinstance(symbol, str) else None,
        name=name if isinstance(name, str) else None,
        decimals=decimals,
        raw_balance=raw_balance,
        balance=Decimal(raw_balance).scaleb(-decimals),
        quote_rate=_optional_number(item.get("quote_rate"), "quote_rate"),
        quote=_optional_number(item.get("quote"), "quote"),
        native=item.get("native_token") is True,
        spam=item.get("is_spam") is True,
    )


__all__ = ["CovalentSource", "PriceSeries", "TokenBalance"]
