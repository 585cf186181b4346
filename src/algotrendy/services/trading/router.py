"""HTTP front door of the trading service: ``/api/v1/trading``.

Placing, changing and cancelling orders needs ``execute_trades`` (traders and admins); reading
needs ``read_portfolio`` (viewers too). Every object is looked up with its owner: another user's
order, position or portfolio answers 404. ``POST /orders`` honours an ``Idempotency-Key`` header
(or ``client_order_id`` in the body): a retry answers 200 with the original order and
``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket, WebSocketDisconnect

from algotrendy.core.auth import Permission, Principal
from algotrendy.core.errors import AlgoTrendyError, Invalid
from algotrendy.engine.orders import OrderSide, OrderStatus
from algotrendy.gateway.auth import authenticator, require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.trading.interface import (
    AccountRead,
    ConnectionCreate,
    ConnectionRead,
    DeploymentCreate,
    DeploymentRead,
    ExecutionStats,
    FillRead,
    OrderCancel,
    OrderCreate,
    OrderModify,
    OrderPage,
    OrderRead,
    PositionClose,
    PositionRead,
    ReconcileRead,
    TradingApi,
)


async def trading_api(request: Request) -> TradingApi:
    api: TradingApi = request.app.state.services["trading"]
    return api


Trading = Annotated[TradingApi, Depends(trading_api)]
Trader = Annotated[Principal, Depends(require(Permission.EXECUTE_TRADES))]
Reader = Annotated[Principal, Depends(require(Permission.READ_PORTFOLIO))]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]
Period = Annotated[str, Query(pattern=r"^[1-9][0-9]{0,3}[hdw]$")]
IsoTime = Annotated[
    str | None,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$",
        description="ISO 8601 date or time (UTC unless an offset is given)",
    ),
]


def _when(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{text!r} is not an ISO 8601 time", field=field) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


router = APIRouter(prefix="/api/v1/trading", tags=["trading"], responses=PROBLEM_RESPONSES)


@router.post("/orders", status_code=201)
async def submit_order(
    body: OrderCreate,
    user: Trader,
    trading: Trading,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderRead:
    """Place an order. A denied order is answered with ``status: rejected`` and its risk reasons."""
    order, created = await trading.submit_order(
        owner_id=user.user_id, request=body, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return order


@router.get("/orders")
async def list_orders(
    user: Reader,
    trading: Trading,
    portfolio_id: uuid.UUID | None = None,
    status: Annotated[list[OrderStatus] | None, Query()] = None,
    symbol: Annotated[str | None, Query(max_length=40)] = None,
    side: OrderSide | None = None,
    since: IsoTime = None,
    until: IsoTime = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> OrderPage:
    return await trading.list_orders(
        owner_id=user.user_id,
        portfolio_id=portfolio_id,
        status=status,
        symbol=symbol,
        side=side,
        since=_when(since, "since"),
        until=_when(until, "until"),
        limit=limit,
        offset=offset,
    )


@router.get("/orders/{order_id:uuid}")
async def get_order(order_id: uuid.UUID, user: Reader, trading: Trading) -> OrderRead:
    return await trading.get_order(owner_id=user.user_id, order_id=order_id)


@router.put("/orders/{order_id:uuid}/cancel")
async def cancel_order(
    order_id: uuid.UUID, user: Trader, trading: Trading, body: OrderCancel | None = None
) -> OrderRead:
    """Cancel an open order (409 if it is already filled, cancelled, rejected or expired)."""
    return await trading.cancel_order(
        owner_id=user.user_id, order_id=order_id, reason=body.reason if body is not None else None
    )


@router.patch("/orders/{order_id:uuid}")
async def modify_order(order_id: uuid.UUID, body: OrderModify, user: Trader, trading: Trading) -> OrderRead:
    """Change a resting order's quantity or prices: it is replaced by a new order (answered)."""
    return await trading.modify_order(owner_id=user.user_id, order_id=order_id, changes=body)


@router.get("/orders/{order_id:uuid}/fills")
async def order_fills(order_id: uuid.UUID, user: Reader, trading: Trading) -> list[FillRead]:
    return await trading.fills(owner_id=user.user_id, order_id=order_id)


@router.get("/positions/{portfolio_id:uuid}")
async def positions(portfolio_id: uuid.UUID, user: Reader, trading: Trading) -> list[PositionRead]:
    return await trading.positions(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.get("/position/{position_id:uuid}")
async def position(position_id: uuid.UUID, user: Reader, trading: Trading) -> PositionRead:
    """One position by its id (flat ones included: their realized P&L and fees stay)."""
    return await trading.position(owner_id=user.user_id, position_id=position_id)


@router.post("/positions/{position_id:uuid}/close", status_code=201)
async def close_position(
    position_id: uuid.UUID, user: Trader, trading: Trading, body: PositionClose | None = None
) -> OrderRead:
    """Close all or part of a position with a reduce-only order (answered)."""
    return await trading.close_position(
        owner_id=user.user_id, position_id=position_id, request=body or PositionClose()
    )


@router.get("/accounts/{portfolio_id:uuid}")
async def account(portfolio_id: uuid.UUID, user: Reader, trading: Trading) -> AccountRead:
    """Cash, reservations, equity and P&L of the portfolio's trading account."""
    return await trading.account(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.post("/accounts/{portfolio_id:uuid}/reconcile")
async def reconcile(portfolio_id: uuid.UUID, user: Trader, trading: Trading) -> ReconcileRead:
    """Compare orders, fills and positions with the venue now: missing fills are applied, unknown
    venue orders adopted; an unexplained position difference halts the account."""
    return await trading.reconcile_account(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.post("/accounts/{portfolio_id:uuid}/resume")
async def resume(portfolio_id: uuid.UUID, user: Trader, trading: Trading) -> AccountRead:
    """Lift a reconciliation halt (it comes back if the difference is still there)."""
    return await trading.resume_account(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.post("/connections", status_code=201)
async def create_connection(body: ConnectionCreate, user: Trader, trading: Trading) -> ConnectionRead:
    """Connect an exchange or broker account: the key is checked at the venue (it must trade and
    must not withdraw) and stored encrypted. Use its id as a portfolio's ``venue``."""
    return await trading.create_connection(owner_id=user.user_id, data=body)


@router.get("/connections")
async def list_connections(user: Reader, trading: Trading) -> list[ConnectionRead]:
    return await trading.connections(owner_id=user.user_id)


@router.delete("/connections/{connection_id:uuid}", status_code=204)
async def delete_connection(connection_id: uuid.UUID, user: Trader, trading: Trading) -> Response:
    await trading.delete_connection(owner_id=user.user_id, connection_id=connection_id)
    return Response(status_code=204)


@router.get("/deployments")
async def list_deployments(user: Reader, trading: Trading) -> list[DeploymentRead]:
    return await trading.deployments(owner_id=user.user_id)


@router.get("/deployments/{deployment_id:uuid}")
async def get_deployment(deployment_id: uuid.UUID, user: Reader, trading: Trading) -> DeploymentRead:
    return await trading.deployment(owner_id=user.user_id, deployment_id=deployment_id)


@router.post("/deployments/{deployment_id:uuid}/stop")
async def stop_deployment(deployment_id: uuid.UUID, user: Trader, trading: Trading) -> DeploymentRead:
    """Stop the strategy placing orders; its open orders and positions stay as they are."""
    return await trading.stop_deployment(owner_id=user.user_id, deployment_id=deployment_id)


strategy_router = APIRouter(prefix="/api/v1/strategies", tags=["trading"], responses=PROBLEM_RESPONSES)


@strategy_router.post("/{strategy_id:uuid}/deploy", status_code=201)
async def deploy_strategy(
    strategy_id: uuid.UUID, body: DeploymentCreate, user: Trader, trading: Trading
) -> DeploymentRead:
    """Run the strategy live on the portfolio's venue (paper or connected), with the same engine
    code as its backtests; it starts once the account is reconciled."""
    return await trading.deploy(owner_id=user.user_id, strategy_id=strategy_id, request=body)


@router.get("/fills/{portfolio_id:uuid}")
async def portfolio_fills(portfolio_id: uuid.UUID, user: Reader, trading: Trading) -> list[FillRead]:
    return await trading.fills(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.get("/execution/stats")
async def execution_stats(
    user: Reader, trading: Trading, portfolio_id: uuid.UUID | None = None, period: Period = "1d"
) -> ExecutionStats:
    return await trading.execution_stats(owner_id=user.user_id, portfolio_id=portfolio_id, period=period)


@router.websocket("/ws")
async def updates(
    websocket: WebSocket, access_token: str | None = None, portfolio_id: uuid.UUID | None = None
) -> None:
    """Your order, fill, position and account updates as JSON messages, as they commit
    (``{"type": "trading.order.filled", "data": {...}}``). Authenticate with ``access_token=``
    or an ``Authorization: Bearer`` header; ``portfolio_id=`` narrows to one portfolio."""
    token = access_token
    header = websocket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:]
    try:
        principal = await authenticator(websocket).authenticate(token)  # type: ignore[arg-type]
        if not principal.can(Permission.READ_PORTFOLIO):
            raise Invalid("this needs the read_portfolio permission", code="permission_denied")
        trading: TradingApi = websocket.app.state.services["trading"]
        if portfolio_id is not None:
            await trading.account(owner_id=principal.user_id, portfolio_id=portfolio_id)  # 404 unless yours
    except AlgoTrendyError as exc:
        await websocket.close(
            code=4401 if exc.status == 401 else 4404 if exc.status == 404 else 4403, reason=exc.detail[:120]
        )
        return
    hub = websocket.app.state.services["trading.updates"]
    await websocket.accept()
    await websocket.send_json(
        {"type": "subscribed", "portfolio_id": str(portfolio_id) if portfolio_id else None}
    )
    with contextlib.suppress(WebSocketDisconnect):
        async for message in hub.updates(principal.user_id, portfolio_id):
            await websocket.send_json(message)
