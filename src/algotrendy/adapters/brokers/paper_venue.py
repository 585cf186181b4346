"""One paper account as a ``core.venue.Venue``: the face of ``paper.PaperExchange`` that the
trading service calls (see ``paper`` for the simulation, its durability and its events)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from algotrendy.adapters.brokers import paper_store as store
from algotrendy.adapters.brokers.paper_streams import Reports
from algotrendy.core.venue import (
    InstrumentRules,
    KeyPermissions,
    OrderRequest,
    VenueBalance,
    VenueEvent,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueUnavailable,
)

if TYPE_CHECKING:
    from algotrendy.adapters.brokers.paper import PaperExchange

_ZERO = Decimal(0)
_QUOTE_CURRENCIES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "JPY", "BTC", "ETH")


class PaperVenue:
    """One paper account: the ``core.venue.Venue`` the trading service calls."""

    name = "paper"
    reports_positions = True
    books_in_our_database = True  # the trading database (``paper_store``)

    def __init__(self, exchange: PaperExchange, account_id: str) -> None:
        self._x = exchange
        self.account_id = account_id
        self.reports = Reports()

    async def connect(self) -> None:
        self._x._require_started()
        self.reports.reopen()

    async def close(self) -> None:
        """End this account's event streams; its orders keep working on the exchange."""
        self.reports.end()

    async def permissions(self) -> KeyPermissions:
        return KeyPermissions(can_trade=True, can_withdraw=False, detail="paper account")

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        if await self._x._last(symbol) is None:
            return None
        currency = self._x._accounts[self.account_id].currency
        for quote in _QUOTE_CURRENCIES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return InstrumentRules(symbol=symbol, base=symbol[: -len(quote)], quote=quote)
        return InstrumentRules(symbol=symbol, base=symbol, quote=currency)

    async def submit(self, request: OrderRequest) -> VenueOrder:
        return await self._x._submit(self.account_id, request)

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        return await self._x._cancel(self.account_id, client_order_id, symbol)

    async def fetch_order(self, *, client_order_id: str, symbol: str) -> VenueOrder | None:
        async with self._x._lock:
            po = await self._x._find(self.account_id, client_order_id)
        return None if po is None or po.order.symbol != symbol else po.view()

    async def open_orders(self, *, symbol: str | None = None) -> list[VenueOrder]:
        async with self._x._lock:
            mine = self._x._open.of_account(self.account_id)
            return [p.view() for p in sorted(mine, key=lambda p: p.seq) if symbol in (None, p.order.symbol)]

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        try:
            async with self._x._sessions() as s:
                return await store.load_fills(
                    s,
                    account_id=self.account_id,
                    symbol=symbol,
                    since_ns=since_ns,
                    client_order_id=client_order_id,
                )
        except SQLAlchemyError as exc:
            raise VenueUnavailable("the paper store is unavailable") from exc

    async def balances(self) -> list[VenueBalance]:
        """Cash is initial cash minus buys and fees plus sells; ``free`` holds back open buys."""
        async with self._x._lock:
            account = self._x._accounts[self.account_id]
            free = await self._x._free(account)
            return [VenueBalance(currency=account.currency, total=account.cash, free=max(free, _ZERO))]

    async def positions(self) -> list[VenuePosition]:
        async with self._x._lock:
            held = self._x._accounts[self.account_id].positions
            return [
                VenuePosition(symbol=s, quantity=p.quantity, average_price=p.average_price)
                for s, p in sorted(held.items())
                if p.quantity != 0
            ]

    def events(self) -> AsyncIterator[VenueEvent]:
        """Execution reports from now on, until ``close`` (see ``paper_streams.Reports``)."""
        return self.reports.subscribe()
