"""The trading service: the order path from intent to position.

Submitting an order (RELIABILITY G1, G2, G6):

1. an earlier request with the same ``client_order_id`` or ``Idempotency-Key`` answers with its
   order (the same one; a different body under a used key is a 409);
2. bad input is refused before anything is written or sent: unknown symbol, quantity below the
   venue minimum or off its step, price off the tick, notional below the minimum (422 naming the
   field);
3. in ONE serialized transaction (``store.lock_account``) for the account's queued orders
   (``placing``): the pre-trade risk check (``engine.risk``) against positions, open orders and
   equity as they stand, the cash reservation for a buy (``engine.ledger``), the order row
   (created -> validated -> submitted, ``venue_state=pending``) and its outbox events.
   Concurrent orders cannot jointly exceed a limit. A denial is stored as a rejected order with
   its reasons and an ``OrderDenied`` event;
4. only then the venue is called. Its answer updates the order; an ambiguous outcome
   (``VenueAmbiguous``) leaves ``venue_state=unknown`` until ``fetch_order`` by client order id
   resolves it (``execution.Resolver``), never a blind resubmission.

Fills arrive from the venue's event stream, from reconciliation, or from a resolved order; all
take one path (``execution.apply_fill``) that stores the fill once per trade id and books the
position and the ledger in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound, TemporaryError
from algotrendy.core.failpoints import NONE as NO_FAILPOINTS
from algotrendy.core.failpoints import Failpoints
from algotrendy.core.venue import QuoteSource, VenueError
from algotrendy.db.outbox import Outbox
from algotrendy.engine.orders import OrderSide, OrderStatus, OrderType
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.portfolio.interface import PortfolioApi
from algotrendy.services.risk.interface import RiskApi
from algotrendy.services.strategies.interface import StrategiesApi
from algotrendy.services.trading import store
from algotrendy.services.trading import views as reads
from algotrendy.services.trading.accounts import Books
from algotrendy.services.trading.checks import check_rules, decide, request_hash, reserve
from algotrendy.services.trading.connections import Connections
from algotrendy.services.trading.deploy import BarFeed, Deployments
from algotrendy.services.trading.execution import Execution
from algotrendy.services.trading.interface import (
    NEEDS_LIMIT,
    AccountRead,
    AccountView,
    ConnectionCreate,
    ConnectionRead,
    DeploymentCreate,
    DeploymentRead,
    ExecutionStats,
    FillRead,
    OrderCancel,
    OrderCreate,
    OrderDenied,
    OrderModify,
    OrderPage,
    OrderRead,
    PositionClose,
    PositionRead,
    ReconcileRead,
    RiskCheckRead,
    RiskReason,
)
from algotrendy.services.trading.placing import Ask, Placing
from algotrendy.services.trading.settings import TradingSettings
from algotrendy.services.trading.venues import Venues
from algotrendy.services.trading.views import account_snapshot, execution_stats, list_orders

log = structlog.get_logger(__name__)

ZERO = Decimal(0)


class TradingService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        settings: TradingSettings,
        portfolios: PortfolioApi,
        risk: Callable[[], RiskApi],
        quotes: QuoteSource,
        venues: Venues,
        failpoints: Failpoints = NO_FAILPOINTS,
        strategies: Callable[[], StrategiesApi | None] = lambda: None,
        bar_feed: BarFeed | None = None,
        models: Callable[[], ModelScores | None] = lambda: None,
        relaxed_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._settings = settings
        self._portfolios = portfolios
        self._risk = risk
        self._quotes = quotes
        self._venues = venues
        self.execution = Execution(
            sessions=sessions, clock=clock, outbox=outbox, venues=venues, failpoints=failpoints
        )
        self.execution.unknown_grace = timedelta(seconds=settings.unknown_grace)
        venues.on_event = self.execution.on_venue_event
        self.connections_ = Connections(
            sessions=sessions,
            box=venues.secret_box,
            venues=venues,
            allow_base_url=settings.allow_custom_venue_urls,
        )
        self._loop: asyncio.Task[None] | None = None
        self._order_accounts: dict[uuid.UUID, dict[str, Any]] = {}
        """Account rows the order path has seen, for what never changes in them (owner, venue,
        connection, currency); what may change (the halt) is read under the lock per order."""
        self._placing = Placing(
            sessions=sessions,
            relaxed_sessions=relaxed_sessions or sessions,
            clock=clock,
            quotes=quotes,
            settings=settings,
            execution=self.execution,
            failpoints=failpoints,
            existing=lambda a: self._existing(a.owner_id, a.request, a.idempotency_key, a.digest),
        )
        self.reconciled = asyncio.Event()
        """Set once every account has been reconciled after start (strategies wait for it)."""
        self.deployments_ = Deployments(
            sessions=sessions,
            clock=clock,
            outbox=outbox,
            trading=self,
            strategies=strategies,
            feed=bar_feed,
            reconciled=self.reconciled,
            buy_haircut=float((1 + settings.market_reserve_buffer) * (1 + settings.reserve_fee_rate)),
            models=models,
        )
        self.execution.listeners.fill.append(self.deployments_.on_fill)
        self.execution.listeners.final.append(self.deployments_.on_final)

    async def start(self) -> None:
        await self._venues.start()
        self._loop = asyncio.get_running_loop().create_task(self._reconcile_loop())
        await self.deployments_.start()

    async def stop(self) -> None:
        await self.deployments_.close()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self.execution.close()
        await self._venues.close()

    async def _reconcile_loop(self) -> None:
        """Reconcile every account on start, then every ``reconcile_interval`` seconds."""
        while True:
            async with self._sessions() as session:
                ids = [r[0] for r in await session.execute(select(store.accounts.c.portfolio_id))]
            for pid in ids:
                try:
                    await self.reconcile(portfolio_id=pid)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("trading.reconcile.failed", portfolio_id=str(pid), error=str(exc)[:300])
            self.reconciled.set()
            await asyncio.sleep(self._settings.reconcile_interval)

    # ---- deployments ---------------------------------------------------------------------------

    async def deploy(
        self, *, owner_id: uuid.UUID, strategy_id: uuid.UUID, request: DeploymentCreate
    ) -> DeploymentRead:
        return await self.deployments_.deploy(owner_id=owner_id, strategy_id=strategy_id, request=request)

    async def deployments(self, *, owner_id: uuid.UUID) -> list[DeploymentRead]:
        return await self.deployments_.list(owner_id=owner_id)

    async def deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        return await self.deployments_.get(owner_id=owner_id, deployment_id=deployment_id)

    async def stop_deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        return await self.deployments_.stop(owner_id=owner_id, deployment_id=deployment_id)

    # ---- connections ---------------------------------------------------------------------------

    async def create_connection(self, *, owner_id: uuid.UUID, data: ConnectionCreate) -> ConnectionRead:
        return await self.connections_.create(owner_id=owner_id, data=data, now=self._clock.now())

    async def connections(self, *, owner_id: uuid.UUID) -> list[ConnectionRead]:
        return await self.connections_.list(owner_id=owner_id)

    async def delete_connection(self, *, owner_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        await self.connections_.delete(owner_id=owner_id, connection_id=connection_id)

    async def reconcile_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> ReconcileRead:
        await self._account(owner_id, portfolio_id)
        counts = await self.reconcile(portfolio_id=portfolio_id)
        async with self._sessions() as session:
            row = await store.get_account(session, portfolio_id)
        assert row is not None
        return ReconcileRead(
            portfolio_id=portfolio_id,
            fills_applied=counts["fills_applied"],
            orders_adopted=counts["orders_adopted"],
            orders_resolved=counts["orders_resolved"],
            halted=bool(row["halted_reason"]),
            halted_reason=row["halted_reason"],
        )

    async def resume_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead:
        """Lift a reconciliation halt once the owner has looked into it; a difference that is
        still there halts the account again at the next reconciliation."""
        await self._account(owner_id, portfolio_id)
        async with self._sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            await session.execute(
                store.accounts.update()
                .where(store.accounts.c.portfolio_id == portfolio_id)
                .values(halted_reason=None)
            )
        return await self.account(owner_id=owner_id, portfolio_id=portfolio_id)

    # ---- accounts ------------------------------------------------------------------------------

    async def _account(self, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> dict[str, Any]:
        """The trading account of a portfolio ``owner_id`` owns (created on first use)."""
        async with self._sessions() as session:
            row = await store.get_account(session, portfolio_id)
        if row is not None:
            if row["owner_id"] != owner_id:
                raise NotFound(f"portfolio {portfolio_id} not found")
            return row
        portfolio = await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        return await self._venues.open_account(portfolio)

    # ---- orders --------------------------------------------------------------------------------

    async def _existing(
        self, owner_id: uuid.UUID, request: OrderCreate, key: str | None, digest: str
    ) -> OrderRead | None:
        if request.client_order_id is None and key is None:
            return None  # nothing to look up: the order gets a new client order id
        async with self._sessions() as session:
            row = None
            if request.client_order_id is not None:
                row = await store.order_by_client_id(session, request.client_order_id)
                if row is not None and row["owner_id"] != owner_id:
                    raise Conflict(
                        "client_order_id is already in use; choose another", code="client_order_id_taken"
                    )
            if row is None and key is not None:
                row = await store.order_by_key(session, owner_id, key)
        if row is None:
            return None
        if row["request_hash"] != digest:
            raise Conflict(
                "this idempotency key / client_order_id was used for a different order",
                code="idempotency_key_reused",
            )
        return reads.order(row)

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
        digest = request_hash(request)
        found = await self._existing(owner_id, request, idempotency_key, digest)
        if found is not None:
            return found, False
        account = self._order_accounts.get(request.portfolio_id)
        if account is None or account["owner_id"] != owner_id:
            account = await self._account(owner_id, request.portfolio_id)
            self._order_accounts[request.portfolio_id] = account
        venue = await self._venues.venue(account)
        rules = await self._venues.rules(venue, request.symbol)
        if rules is None:
            raise Invalid(
                f"unknown symbol {request.symbol} at {venue.name}", field="symbol", code="unknown_symbol"
            )
        reference = await self._reference_price(request)
        check_rules(request, rules, reference)
        limits = (await self._risk().limits_for(portfolio_id=request.portfolio_id)).engine_limits()
        client_order_id = request.client_order_id or f"at-{uuid.uuid4().hex[:32]}"
        ask = Ask(owner_id, request, venue, reference, limits, digest, idempotency_key,
                   client_order_id, deployment_id, local_id, tag,
                   structlog.contextvars.get_contextvars())  # fmt: skip
        # The account's queue (``turns``): its orders' intents share a transaction, then go to
        # the venue one by one. Fills booked meanwhile are heard by deployments after the batch
        # (``listeners``): one may place this account's next order.
        async with self.execution.listeners.after():
            return await self._placing.place(ask)

    async def _reference_price(
        self, request: OrderCreate | OrderModify, symbol: str | None = None
    ) -> Decimal:
        """What the order is expected to cost per unit: its limit (or stop) price, else the last price."""
        if request.limit_price is not None:
            return request.limit_price
        if request.stop_price is not None:
            return request.stop_price
        name = symbol or str(getattr(request, "symbol", ""))
        quote = await self._quotes.last(name)
        if quote is None:
            raise Invalid(
                f"no price is known for {name}: use a limit order, or load its market data",
                field="symbol",
                code="no_price",
            )
        return quote.price

    async def get_order(self, *, owner_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead:
        return reads.order(await self._owned_order(owner_id, order_id))

    async def _owned_order(self, owner_id: uuid.UUID, order_id: uuid.UUID) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await store.order_by_id(session, order_id)
        if row is None or row["owner_id"] != owner_id:
            raise NotFound(f"order {order_id} not found")
        return row

    async def list_orders(self, *, owner_id: uuid.UUID, **filters: Any) -> OrderPage:
        async with self._sessions() as session:
            return await list_orders(session, owner_id=owner_id, **filters)

    async def cancel_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, reason: str | None = None
    ) -> OrderRead:
        row = await self._owned_order(owner_id, order_id)
        status = OrderStatus(str(row["status"]))
        if status.is_final:
            raise Conflict(
                f"order {order_id} is {status.value}; only open orders can be cancelled",
                code="not_cancelable",
            )
        account = await self._account(owner_id, row["portfolio_id"])
        return await self.execution.cancel(
            row, await self._venues.venue(account), reason or "cancelled by user"
        )

    async def modify_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, changes: OrderModify
    ) -> OrderRead:
        """Cancel-and-replace: the resting order is cancelled at the venue and a new order for the
        rest of the intent (new quantity / prices) takes its place (``replaces_order_id``)."""
        row = await self._owned_order(owner_id, order_id)
        status = OrderStatus(str(row["status"]))
        otype = OrderType(str(row["order_type"]))
        if not status.is_open:
            raise Conflict(
                f"order {order_id} is {status.value}; only open orders can be modified", code="not_open"
            )
        if otype is OrderType.MARKET:
            raise Conflict("a market order cannot be modified", code="not_modifiable")
        if changes.limit_price is not None and otype not in NEEDS_LIMIT:
            raise Invalid(f"a {otype.value} order has no limit price", field="limit_price")
        if changes.stop_price is not None and otype not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise Invalid(f"a {otype.value} order has no stop price", field="stop_price")
        filled = row["filled_quantity"]
        if changes.quantity is not None and changes.quantity <= filled:
            raise Invalid(f"the new quantity must exceed what is already filled ({filled})", field="quantity")
        cancelled = await self.cancel_order(owner_id=owner_id, order_id=order_id, reason="replaced")
        if cancelled.status is not OrderStatus.CANCELLED:
            raise Conflict(f"order {order_id} became {cancelled.status.value} before it could be replaced")
        quantity = (changes.quantity or cancelled.quantity) - cancelled.filled_quantity
        replacement = OrderCreate(
            portfolio_id=cancelled.portfolio_id,
            symbol=cancelled.symbol,
            side=cancelled.side,
            quantity=quantity,
            order_type=cancelled.order_type,
            time_in_force=cancelled.time_in_force,
            limit_price=changes.limit_price or cancelled.limit_price,
            stop_price=changes.stop_price or cancelled.stop_price,
            trail_percent=cancelled.trail_percent,
            reduce_only=cancelled.reduce_only,
        )
        new, _ = await self.submit_order(owner_id=owner_id, request=replacement)
        async with self._sessions() as session, session.begin():
            await store.update_order(session, new.order_id, replaces_order_id=order_id)
        return new.model_copy(update={"replaces_order_id": order_id})

    async def fills(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID | None = None, portfolio_id: uuid.UUID | None = None
    ) -> list[FillRead]:
        if order_id is not None:
            await self._owned_order(owner_id, order_id)
        elif portfolio_id is not None:
            await self._account(owner_id, portfolio_id)
        else:
            raise Invalid("give an order_id or a portfolio_id", field="portfolio_id")
        async with self._sessions() as session:
            return await reads.fills(session, order_id=order_id, portfolio_id=portfolio_id)

    # ---- positions and accounts ----------------------------------------------------------------

    async def positions(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> list[PositionRead]:
        await self._account(owner_id, portfolio_id)
        async with self._sessions() as session:
            rows = await store.position_rows(session, portfolio_id)
        return [await reads.position(r, self._quotes) for r in rows if r["quantity"] != ZERO]

    async def _owned_position(self, owner_id: uuid.UUID, position_id: uuid.UUID) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await store.position_by_id(session, position_id)
        if row is None or row["owner_id"] != owner_id:
            raise NotFound(f"position {position_id} not found")
        return row

    async def position(self, *, owner_id: uuid.UUID, position_id: uuid.UUID) -> PositionRead:
        return await reads.position(await self._owned_position(owner_id, position_id), self._quotes)

    async def close_position(
        self, *, owner_id: uuid.UUID, position_id: uuid.UUID, request: PositionClose
    ) -> OrderRead:
        row = await self._owned_position(owner_id, position_id)
        held: Decimal = row["quantity"]
        if held == ZERO:
            raise Conflict(f"position {position_id} is already flat", code="position_flat")
        quantity = request.quantity if request.quantity is not None else abs(held)
        if quantity > abs(held):
            raise Invalid(f"the position holds {abs(held)}; cannot close {quantity}", field="quantity")
        order = OrderCreate(
            portfolio_id=row["portfolio_id"],
            symbol=row["symbol"],
            side=OrderSide.SELL if held > 0 else OrderSide.BUY,
            quantity=quantity,
            order_type=OrderType.LIMIT if request.limit_price is not None else OrderType.MARKET,
            limit_price=request.limit_price,
            reduce_only=True,
        )
        result, _ = await self.submit_order(owner_id=owner_id, request=order)
        return result

    async def account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead:
        account = await self._account(owner_id, portfolio_id)
        async with self._sessions() as session:
            snap = await account_snapshot(session, account, self._quotes, self._clock)
        return snap.read

    async def account_view(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountView:
        account = await self._account(owner_id, portfolio_id)
        async with self._sessions() as session:
            snap = await account_snapshot(session, account, self._quotes, self._clock)
        return snap.public_view

    async def open_position_count(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> int:
        async with self._sessions() as session:
            rows = await store.position_rows(session, portfolio_id)
            open_orders = await store.open_orders(session, portfolio_id)
        held = sum(1 for r in rows if r["owner_id"] == owner_id and r["quantity"] != ZERO)
        return held + sum(1 for o in open_orders if o["owner_id"] == owner_id)

    async def execution_stats(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None, period: str
    ) -> ExecutionStats:
        if portfolio_id is not None:
            await self._account(owner_id, portfolio_id)
        async with self._sessions() as session:
            return await execution_stats(
                session, owner_id=owner_id, portfolio_id=portfolio_id, period=period, now=self._clock.now()
            )

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead:
        """The same checks the order path runs, without placing anything."""
        account = await self._account(owner_id, request.portfolio_id)
        venue = await self._venues.venue(account)
        rules = await self._venues.rules(venue, request.symbol)
        if rules is None:
            raise Invalid(
                f"unknown symbol {request.symbol} at {venue.name}", field="symbol", code="unknown_symbol"
            )
        reference = await self._reference_price(request)
        check_rules(request, rules, reference)
        limits = (await self._risk().limits_for(portfolio_id=request.portfolio_id)).engine_limits()
        async with self._sessions() as session:
            snapshot = await account_snapshot(
                session, account, self._quotes, self._clock, order_times=limits.max_orders_per_minute
            )
            decision = decide(request, reference, snapshot, limits, account, self._clock.now())
            if decision.allowed and request.side is OrderSide.BUY:
                books = Books.new_order(request.portfolio_id, snapshot.balances)
                decision = reserve(books, uuid.uuid4(), request, reference, account, self._settings)
        return RiskCheckRead(
            allowed=decision.allowed,
            reasons=[RiskReason(code=d.code, message=d.message) for d in decision.denials],
        )

    async def reconcile(self, *, portfolio_id: uuid.UUID) -> dict[str, int]:
        account = None
        async with self._sessions() as session:
            account = await store.get_account(session, portfolio_id)
        if account is None:
            raise NotFound(f"portfolio {portfolio_id} has no trading account")
        venue = await self._venues.venue(account)
        try:
            return await self.execution.reconcile(account, venue)
        except VenueError as exc:
            raise TemporaryError(f"reconciliation with {venue.name} did not finish: {exc}") from exc


def since_for(period: str, now: datetime) -> datetime:
    units = {"h": 3600, "d": 86_400, "w": 604_800}
    try:
        value, unit = int(period[:-1]), period[-1]
        return now - timedelta(seconds=value * units[unit])
    except (ValueError, KeyError):
        raise Invalid("period is like 1h, 1d, 7d, 4w", field="period") from None


ResolveHook = Callable[[uuid.UUID], Awaitable[None]]
__all__ = ["OrderCancel", "OrderDenied", "TradingService", "since_for"]
