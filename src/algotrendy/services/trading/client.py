"""``TradingClient``: the ``TradingApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``TradingService``. The owner is the
bearer token's user: acting for anyone else is refused locally with ``Forbidden``. Problem+json
errors come back as the matching ``core.errors`` class with ``code``, ``detail`` and ``field``;
a transport failure or a 5xx is ``TemporaryError`` (``gateway.remote``).

Two methods have no route of their own and are read from the ones there are: ``account_view``
(``GET /accounts/{id}`` and ``GET /positions/{id}``: two reads, not one snapshot, and prices only
for the symbols held now) and ``open_position_count`` (positions plus the open orders, paged).
Orders of a strategy deployment (``deployment_id``, ``local_id``, ``tag``) are placed only inside
the trading process.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.core.errors import Invalid
from algotrendy.engine.orders import OrderSide, OrderStatus
from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.trading.interface import (
    AccountRead,
    AccountView,
    ConnectionCreate,
    ConnectionRead,
    DeploymentCreate,
    DeploymentRead,
    ExecutionStats,
    FillRead,
    OrderCreate,
    OrderModify,
    OrderPage,
    OrderRead,
    PositionClose,
    PositionRead,
    ReconcileRead,
    RiskCheckRead,
)

if TYPE_CHECKING:
    from algotrendy.services.trading.interface import TradingApi

PREFIX = "/api/v1/trading"
DEPLOY_PREFIX = "/api/v1/strategies"
RISK_CHECK = "/api/v1/risk/pre-trade-check"
OPEN_STATUSES = (
    OrderStatus.CREATED,
    OrderStatus.VALIDATED,
    OrderStatus.SUBMITTED,
    OrderStatus.PARTIAL_FILL,
)
"""What the service counts as an open order (``store.open_orders``)."""
PAGE = 500  # the router's largest page

_ORDER = TypeAdapter(OrderRead)
_PAGE = TypeAdapter(OrderPage)
_FILLS = TypeAdapter(list[FillRead])
_POSITIONS = TypeAdapter(list[PositionRead])
_POSITION = TypeAdapter(PositionRead)
_ACCOUNT = TypeAdapter(AccountRead)
_STATS = TypeAdapter(ExecutionStats)
_CHECK = TypeAdapter(RiskCheckRead)
_CONNECTION = TypeAdapter(ConnectionRead)
_CONNECTIONS = TypeAdapter(list[ConnectionRead])
_RECONCILE = TypeAdapter(ReconcileRead)
_DEPLOYMENT = TypeAdapter(DeploymentRead)
_DEPLOYMENTS = TypeAdapter(list[DeploymentRead])


class TradingClient(RemoteApi):
    """``TradingApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "trading"

    def with_token(self, token: str) -> TradingClient:
        return TradingClient(self._http, token=token)

    # ---- orders ------------------------------------------------------------------------------

    async def submit_order(
        self,
        *,
        owner_id: uuid.UUID,
        request: OrderCreate,
        idempotency_key: str | None = None,
        deployment_id: uuid.UUID | None = None,
        local_id: str | None = None,
        tag: str | None = None,
    ) -> tuple[OrderRead, bool]:
        self._own(owner_id)
        for field, value in (("deployment_id", deployment_id), ("local_id", local_id), ("tag", tag)):
            if value is not None:
                raise Invalid(
                    "strategy deployments place orders only inside the trading service", field=field
                )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
        response = await self._send(
            "POST",
            f"{PREFIX}/orders",
            json=request.model_dump(mode="json", exclude_none=True),
            extra_headers=headers,
        )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return self._parse(response, _ORDER), response.status_code == 201 and not replayed

    async def get_order(self, *, owner_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/orders/{order_id}"), _ORDER)

    async def list_orders(
        self,
        *,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID | None = None,
        status: list[OrderStatus] | None = None,
        symbol: str | None = None,
        side: OrderSide | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> OrderPage:
        self._own(owner_id)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if portfolio_id is not None:
            params["portfolio_id"] = str(portfolio_id)
        if status:
            params["status"] = [OrderStatus(s).value for s in status]
        if symbol is not None:
            params["symbol"] = symbol
        if side is not None:
            params["side"] = OrderSide(side).value
        if since is not None:
            params["since"] = since.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        return self._parse(await self._send("GET", f"{PREFIX}/orders", params=params), _PAGE)

    async def cancel_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, reason: str | None = None
    ) -> OrderRead:
        self._own(owner_id)
        body = {"reason": reason} if reason is not None else None
        return self._parse(await self._send("PUT", f"{PREFIX}/orders/{order_id}/cancel", json=body), _ORDER)

    async def modify_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, changes: OrderModify
    ) -> OrderRead:
        self._own(owner_id)
        body = changes.model_dump(mode="json", exclude_none=True)
        return self._parse(await self._send("PATCH", f"{PREFIX}/orders/{order_id}", json=body), _ORDER)

    async def fills(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID | None = None, portfolio_id: uuid.UUID | None = None
    ) -> list[FillRead]:
        self._own(owner_id)
        if order_id is not None:
            found = self._parse(await self._send("GET", f"{PREFIX}/orders/{order_id}/fills"), _FILLS)
            # the service narrows by both when both are given
            return found if portfolio_id is None else [f for f in found if f.portfolio_id == portfolio_id]
        if portfolio_id is not None:
            return self._parse(await self._send("GET", f"{PREFIX}/fills/{portfolio_id}"), _FILLS)
        raise Invalid("give an order_id or a portfolio_id", field="portfolio_id")

    # ---- positions and accounts ----------------------------------------------------------------

    async def positions(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> list[PositionRead]:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/positions/{portfolio_id}"), _POSITIONS)

    async def position(self, *, owner_id: uuid.UUID, position_id: uuid.UUID) -> PositionRead:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/position/{position_id}"), _POSITION)

    async def close_position(
        self, *, owner_id: uuid.UUID, position_id: uuid.UUID, request: PositionClose
    ) -> OrderRead:
        self._own(owner_id)
        body = request.model_dump(mode="json", exclude_none=True)
        response = await self._send("POST", f"{PREFIX}/positions/{position_id}/close", json=body)
        return self._parse(response, _ORDER)

    async def account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/accounts/{portfolio_id}"), _ACCOUNT)

    async def account_view(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountView:
        """Built as ``views.account_snapshot`` builds it: cash includes what open orders reserve;
        a position is priced at its mark, else its average price. Flat positions are not served
        over HTTP, so ``prices`` covers the symbols held now only."""
        account = await self.account(owner_id=owner_id, portfolio_id=portfolio_id)
        held = await self.positions(owner_id=owner_id, portfolio_id=portfolio_id)
        prices: dict[str, Decimal] = {}
        for p in held:
            price = p.market_price or p.average_price
            if price is not None:
                prices[p.symbol] = price
        return AccountView(
            portfolio_id=account.portfolio_id,
            currency=account.currency,
            cash=account.cash + account.reserved,
            equity=account.equity,
            positions={p.symbol: p.quantity for p in held if p.quantity != 0},
            prices=prices,
            day_start_equity=account.day_start_equity,
            peak_equity=account.peak_equity,
        )

    async def open_position_count(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> int:
        """Non-flat positions plus open orders, as ``TradingService.open_position_count`` counts."""
        held = await self.positions(owner_id=owner_id, portfolio_id=portfolio_id)
        count = sum(1 for p in held if p.quantity != 0)
        offset = 0
        while True:
            page = await self.list_orders(
                owner_id=owner_id,
                portfolio_id=portfolio_id,
                status=list(OPEN_STATUSES),
                limit=PAGE,
                offset=offset,
            )
            count += len(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return count

    async def execution_stats(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None, period: str
    ) -> ExecutionStats:
        self._own(owner_id)
        params: dict[str, Any] = {"period": period}
        if portfolio_id is not None:
            params["portfolio_id"] = str(portfolio_id)
        return self._parse(await self._send("GET", f"{PREFIX}/execution/stats", params=params), _STATS)

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead:
        self._own(owner_id)
        body = {
            "portfolio_id": str(request.portfolio_id),
            "order": request.model_dump(mode="json", exclude_none=True, exclude={"portfolio_id"}),
        }
        return self._parse(await self._send("POST", RISK_CHECK, json=body), _CHECK)

    # ---- connections and reconciliation --------------------------------------------------------

    async def create_connection(self, *, owner_id: uuid.UUID, data: ConnectionCreate) -> ConnectionRead:
        self._own(owner_id)
        response = await self._send("POST", f"{PREFIX}/connections", json=self._body(data))
        return self._parse(response, _CONNECTION)

    async def connections(self, *, owner_id: uuid.UUID) -> list[ConnectionRead]:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/connections"), _CONNECTIONS)

    async def delete_connection(self, *, owner_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        self._own(owner_id)
        await self._send("DELETE", f"{PREFIX}/connections/{connection_id}")

    async def reconcile_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> ReconcileRead:
        self._own(owner_id)
        response = await self._send("POST", f"{PREFIX}/accounts/{portfolio_id}/reconcile")
        return self._parse(response, _RECONCILE)

    async def resume_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead:
        self._own(owner_id)
        return self._parse(await self._send("POST", f"{PREFIX}/accounts/{portfolio_id}/resume"), _ACCOUNT)

    # ---- deployments ---------------------------------------------------------------------------

    async def deploy(
        self, *, owner_id: uuid.UUID, strategy_id: uuid.UUID, request: DeploymentCreate
    ) -> DeploymentRead:
        self._own(owner_id)
        response = await self._send("POST", f"{DEPLOY_PREFIX}/{strategy_id}/deploy", json=self._body(request))
        return self._parse(response, _DEPLOYMENT)

    async def deployments(self, *, owner_id: uuid.UUID) -> list[DeploymentRead]:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/deployments"), _DEPLOYMENTS)

    async def deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        self._own(owner_id)
        return self._parse(await self._send("GET", f"{PREFIX}/deployments/{deployment_id}"), _DEPLOYMENT)

    async def stop_deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        self._own(owner_id)
        response = await self._send("POST", f"{PREFIX}/deployments/{deployment_id}/stop")
        return self._parse(response, _DEPLOYMENT)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: TradingClient) -> TradingApi:
        return client
