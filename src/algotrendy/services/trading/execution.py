"""What the venue says, applied: acknowledgements, status changes, fills, and reconciliation.

Every venue report (the ``submit`` answer, the event stream, a resolved ambiguous order,
reconciliation) goes through ``on_venue_order`` / ``on_fill`` under the account lock, in one
transaction with its outbox events:

- a fill is stored once per ``(portfolio, trade_id)``: a duplicate changes nothing (G3); it
  moves the order through the state machine (``engine.orders.Order.apply_fill``) and books the
  position and the ledger (``accounts.book_fill``). A fill for an order already cancelled or
  expired (it executed before the cancel took effect: the documented late fill) is booked on
  the position and the ledger and counted on the order without changing its final status;
- a status the state machine does not allow is refused, logged and recorded in
  ``trading_order_events`` with ``accepted=false``; nothing else changes (G5);
- an order the venue has and we do not (placed elsewhere, or lost between accept and commit)
  is adopted as an external order.

An ambiguous submission is resolved by ``fetch_order`` with backoff (``resolve``); reconciliation
(on start and periodically) does the rest: pending/unknown orders, open orders, fills since the
last one, and positions. A position difference that fills cannot explain halts the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import TemporaryError
from algotrendy.core.failpoints import NONE as NO_FAILPOINTS
from algotrendy.core.failpoints import Failpoints
from algotrendy.core.venue import (
    OrderRequest,
    Venue,
    VenueAmbiguous,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from algotrendy.db.outbox import Outbox
from algotrendy.engine.orders import (
    InvalidTransition,
    OrderStatus,
)
from algotrendy.engine.risk import RiskDecision
from algotrendy.services.trading import store
from algotrendy.services.trading import views as reads
from algotrendy.services.trading.accounts import Books
from algotrendy.services.trading.bookings import (
    book_fill_row,
    engine_order,
    external_order_row,
    insert_orders,
    order_event,
)
from algotrendy.services.trading.interface import (
    STATUS_EVENTS,
    OrderCreated,
    OrderRead,
    OrderUnknown,
    VenueState,
)
from algotrendy.services.trading.listeners import Listeners
from algotrendy.services.trading.seen import Seen

log = structlog.get_logger(__name__)
ZERO = Decimal(0)
RESOLVE_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_FINAL_NEWS = frozenset({OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


def _nothing_to_acknowledge(row: dict[str, Any], vo: VenueOrder) -> bool:
    """The order is acknowledged already and the report ends nothing that has not ended."""
    return row["venue_state"] == VenueState.ACKNOWLEDGED.value and (
        OrderStatus(vo.status) not in _FINAL_NEWS or OrderStatus(row["status"]).is_final
    )


class Execution:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        venues: Any,
        failpoints: Failpoints = NO_FAILPOINTS,
    ) -> None:
        self._fail = failpoints
        self.sessions = sessions
        self.clock = clock
        self.outbox = outbox
        self._venues = venues
        self._tasks: set[asyncio.Task[None]] = set()
        self.unknown_grace = timedelta(minutes=2)
        self.seen = Seen()
        self._in_flight: dict[str, asyncio.Event] = {}
        """Orders being sent, by client order id: set once the venue's answer is applied."""
        self._cancel_reasons: dict[str, str] = {}
        """Why a cancel was asked, by client order id: the venue's stream may report the
        cancellation before the cancel call returns."""
        self.listeners = Listeners()
        """Who hears of booked fills and final orders (``listeners``)."""

    # ---- creating and sending ------------------------------------------------------------------

    async def insert_orders(
        self, session: AsyncSession, placed: Sequence[tuple[RiskDecision, dict[str, Any]]]
    ) -> None:
        await insert_orders(session, self.outbox, placed)

    async def send(self, order_id: uuid.UUID, venue: Venue, row: dict[str, Any] | None = None) -> OrderRead:
        """Ask the venue for a committed intent (``row``: the order as committed, else read) and
        apply its answer; the order as it then stands."""
        if row is None:
            async with self.sessions() as session:
                row = await store.order_by_id(session, order_id)
        assert row is not None
        request = OrderRequest(
            client_order_id=row["client_order_id"],
            symbol=row["symbol"],
            side=row["side"],
            type=row["order_type"],
            quantity=row["quantity"],
            time_in_force=row["time_in_force"],
            limit_price=row["limit_price"],
            stop_price=row["stop_price"],
            trail_percent=row["trail_percent"],
            reduce_only=row["reduce_only"],
        )
        final: dict[str, Any] | None = None
        try:
            answer = await venue.submit(request)
        except (VenueRejected, VenueUnavailable) as exc:
            # Definitively not placed (G1): the order is rejected, its reservation released.
            what = "rejected by the venue" if isinstance(exc, VenueRejected) else "venue unavailable"
            await self.finish(row["portfolio_id"], order_id, OrderStatus.REJECTED, f"{what}: {exc}")
        except VenueAmbiguous as exc:
            await self._mark_unknown(row, str(exc))
            self.spawn(self.resolve(row["portfolio_id"], row["client_order_id"], row["symbol"], venue))
        else:
            # The venue's stream may repeat the answer (the paper venue publishes it before it
            # returns): the stream's reports on this order wait until the answer is applied, then
            # are dropped as known (``Seen``) or applied. Set before this coroutine yields again.
            gate = self._in_flight[row["client_order_id"]] = asyncio.Event()
            try:
                self._fail.hit("trading.after_send")
                final = await self.on_venue_order(row["portfolio_id"], answer, venue=venue)
                self._fail.hit("trading.after_ack")
            finally:
                if self._in_flight.get(row["client_order_id"]) is gate:
                    del self._in_flight[row["client_order_id"]]
                gate.set()
        if final is not None:
            return reads.order(store.as_stored(final))
        async with self.sessions() as session:
            final = await store.order_by_id(session, order_id)
        return reads.order(final or row)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _mark_unknown(self, row: dict[str, Any], detail: str) -> None:
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, row["portfolio_id"])
            now = self.clock.now()
            await store.update_order(session, row["id"], venue_state=VenueState.UNKNOWN.value, updated_at=now)
            await store.record_event(
                session,
                row["id"],
                row["status"],
                row["status"],
                accepted=True,
                detail=f"unknown: {detail}",
                at=now,
            )
            await self.outbox.add(session, order_event(OrderUnknown, dict(row, reason=detail)))
        log.warning("trading.order.unknown", order_id=str(row["id"]), detail=detail)

    async def resolve(self, portfolio_id: uuid.UUID, client_order_id: str, symbol: str, venue: Venue) -> None:
        """Find out what happened to an ambiguous submission, by client order id only."""
        for delay in RESOLVE_DELAYS:
            await asyncio.sleep(delay)
            try:
                found = await venue.fetch_order(client_order_id=client_order_id, symbol=symbol)
            except VenueError as exc:
                log.info("trading.resolve.retry", client_order_id=client_order_id, error=str(exc))
                continue
            if found is not None:
                await self.on_venue_order(portfolio_id, found, venue=venue)
                return
        log.warning("trading.resolve.pending", client_order_id=client_order_id)

    async def cancel(self, row: dict[str, Any], venue: Venue, reason: str) -> OrderRead:
        if row["venue_state"] == VenueState.NONE.value:
            await self.finish(row["portfolio_id"], row["id"], OrderStatus.CANCELLED, reason)
        else:
            answer: VenueOrder | None
            self._cancel_reasons[row["client_order_id"]] = reason
            try:
                answer = await venue.cancel(client_order_id=row["client_order_id"], symbol=row["symbol"])
            except VenueRejected:
                answer = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
                if answer is None:
                    await self.finish(row["portfolio_id"], row["id"], OrderStatus.CANCELLED, reason)
            except VenueError as exc:
                self._cancel_reasons.pop(row["client_order_id"], None)
                raise TemporaryError(
                    f"{venue.name} did not confirm the cancel ({exc}); the order updates when the venue "
                    "reports, or try again"
                ) from exc
            if answer is not None:
                await self.on_venue_order(row["portfolio_id"], answer, venue=venue, reason=reason)
        async with self.sessions() as session:
            final = await store.order_by_id(session, row["id"]) or row
        self._cancel_reasons.pop(row["client_order_id"], None)
        return reads.order(final)

    # ---- applying venue reports ----------------------------------------------------------------

    async def on_venue_event(
        self, portfolio_id: uuid.UUID, event: VenueOrder | VenueFill, venue: Venue
    ) -> None:
        gate = self._in_flight.get(event.client_order_id)
        if gate is not None:
            await gate.wait()
        if isinstance(event, VenueFill):
            await self.on_fill(portfolio_id, event, venue=venue)
        else:
            await self.on_venue_order(portfolio_id, event, venue=venue)

    async def on_venue_order(
        self, portfolio_id: uuid.UUID, vo: VenueOrder, *, venue: Venue, reason: str | None = None
    ) -> dict[str, Any] | None:
        """Apply a venue report on an order: its fills, its acknowledgement, its final status.
        Returns the order row as committed when the report was applied in one transaction."""
        if reason is None and self.seen.nothing_new(vo):
            return None
        applied = await self._apply_at_once(portfolio_id, vo, reason)
        if applied is not None:
            return applied
        async with self.sessions() as session:
            row = await store.order_by_client_id(session, vo.client_order_id)
        if row is not None and row["portfolio_id"] == portfolio_id:
            self.seen.order(row)
        if row is None:
            if not await self.adopt(portfolio_id, vo):
                return None
            async with self.sessions() as session:
                row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
        if row["portfolio_id"] != portfolio_id:
            return None  # another portfolio on the same venue account: its own stream applies it
        if vo.filled_quantity > row["filled_quantity"]:
            # The venue filled more than we booked: book those fills first (they carry the
            # prices and trade ids; the answer may bring them, else they are fetched); status
            # follows from them.
            for vf in vo.fills:
                await self.on_fill(portfolio_id, vf, venue=venue)
            if vo.fills:
                async with self.sessions() as session:
                    row = await store.order_by_client_id(session, vo.client_order_id)
                assert row is not None
            if vo.filled_quantity > row["filled_quantity"]:
                await self.sync_fills(
                    portfolio_id,
                    venue,
                    symbol=vo.symbol,
                    since=row["created_at"],
                    client_order_id=vo.client_order_id,
                )
        if _nothing_to_acknowledge(row, vo):
            return None  # nothing new (the stream repeats what the submit answer already said)
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
            _, ended = await self._acknowledge(session, row, vo, reason)
        if ended is not None:
            await self._notify_final(*ended)
        return None

    async def _apply_at_once(
        self, portfolio_id: uuid.UUID, vo: VenueOrder, reason: str | None
    ) -> dict[str, Any] | None:
        """The common report, applied in ONE transaction under the account lock: an order we
        have, its fills that the report carries and are not booked yet (each exactly as
        ``on_fill`` books it), then its acknowledgement and final status (as the general path
        below). ``None`` (nothing written but fills it could book) when the general path must
        take over: an order we do not have or another portfolio's, or fills the report lacks."""
        if any(vf.client_order_id != vo.client_order_id for vf in vo.fills):
            return None
        booked: list[tuple[dict[str, Any], VenueFill]] = []
        seen_fills: list[str] = []
        ended = None
        complete = False
        async with self.sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            if account is None:
                return None
            row = await store.order_by_client_id(session, vo.client_order_id)
            if row is None or row["portfolio_id"] != portfolio_id:
                return None
            now = self.clock.now()
            for vf in vo.fills:
                if (portfolio_id, vf.trade_id) in self.seen.fills or await store.fill_exists(
                    session, portfolio_id, vf.trade_id
                ):
                    seen_fills.append(vf.trade_id)
                    continue
                new = await book_fill_row(session, self.outbox, account, row, vf, now)
                seen_fills.append(vf.trade_id)
                if new is not None:
                    row = new
                    booked.append((new, vf))
            if vo.filled_quantity <= row["filled_quantity"]:
                complete = True
                if not _nothing_to_acknowledge(row, vo):
                    row, ended = await self._acknowledge(session, row, vo, reason)
        for trade_id in seen_fills:
            self.seen.fill(portfolio_id, trade_id)
        await self._after_fills(booked)
        if ended is not None:
            await self._notify_final(*ended)
        if not complete:
            return None
        self.seen.order(row)
        return row

    async def _acknowledge(
        self, session: AsyncSession, row: dict[str, Any], vo: VenueOrder, reason: str | None
    ) -> tuple[dict[str, Any], tuple[dict[str, Any], OrderStatus, str] | None]:
        """Record that the venue has the order and, when the report says it ended, its final
        status. Returns the row as it now stands, and what ``_notify_final`` is to hear after
        the commit if the order ended."""
        target = OrderStatus(vo.status)
        now = self.clock.now()
        if row["venue_state"] != VenueState.ACKNOWLEDGED.value:
            changes = {
                "venue_state": VenueState.ACKNOWLEDGED.value,
                "venue_order_id": vo.venue_order_id,
                "acknowledged_at": now,
                "updated_at": now,
            }
            await store.update_order(session, row["id"], **changes)
            row = dict(row, **changes)
        if target in _FINAL_NEWS:
            asked = (
                self._cancel_reasons.pop(vo.client_order_id, None)
                if target is OrderStatus.CANCELLED
                else None
            )
            why = reason or asked or vo.reason or f"{target.value} by the venue"
            ended = await self._transition(session, row, target, why)
            if ended is not None:
                row = ended
                return row, (dict(row), target, why)
        return row, None

    async def finish(
        self, portfolio_id: uuid.UUID, order_id: uuid.UUID, target: OrderStatus, reason: str
    ) -> None:
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            row = await store.order_by_id(session, order_id)
            assert row is not None
            if target is OrderStatus.REJECTED and row["venue_state"] == VenueState.PENDING.value:
                await store.update_order(session, order_id, venue_state=VenueState.NONE.value)
            changed = await self._transition(session, row, target, reason) is not None
        if changed:
            await self._notify_final(dict(row, status=target.value, reason=reason), target, reason)

    async def _notify_final(self, row: dict[str, Any], status: OrderStatus, reason: str) -> None:
        await self.listeners.ended(row, status, reason)

    async def _transition(
        self, session: AsyncSession, row: dict[str, Any], target: OrderStatus, reason: str
    ) -> dict[str, Any] | None:
        """Move the order to ``target`` if the state machine allows it: the row as it now
        stands, ``None`` (and the refusal recorded) if not."""
        current = OrderStatus(row["status"])
        now = self.clock.now()
        order = engine_order(row)
        try:
            order.transition(target, reason)
        except InvalidTransition as exc:
            if current != target:
                log.warning("trading.order.transition_refused", order_id=str(row["id"]), error=str(exc))
                await store.record_event(
                    session, row["id"], current.value, target.value, accepted=False, detail=str(exc), at=now
                )
            return None
        await store.update_order(session, row["id"], status=target.value, reason=reason, updated_at=now)
        await store.record_event(
            session, row["id"], current.value, target.value, accepted=True, detail=reason, at=now
        )
        if target.is_final:
            books = await Books.load(session, row["portfolio_id"], order_id=row["id"])
            books.ledger.release(str(row["id"]))
            await books.save(session, now)
        new = dict(row, status=target.value, reason=reason, updated_at=now)
        await self.outbox.add(session, order_event(STATUS_EVENTS[target], new))
        return new

    async def on_fill(self, portfolio_id: uuid.UUID, vf: VenueFill, *, venue: Venue) -> bool:
        """Apply one venue fill (``False`` if it was applied before)."""
        if (portfolio_id, vf.trade_id) in self.seen.fills:
            return False
        async with self.sessions() as session:
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
                self.seen.fill(portfolio_id, vf.trade_id)
                return False
            row = await store.order_by_client_id(session, vf.client_order_id)
        if row is not None and row["portfolio_id"] != portfolio_id:
            return False  # another portfolio's fill on a shared venue account
        if row is None:
            found = await venue.fetch_order(client_order_id=vf.client_order_id, symbol=vf.symbol)
            if found is None:
                log.error("trading.fill.orphan", trade_id=vf.trade_id, client_order_id=vf.client_order_id)
                return False
            if not await self.adopt(portfolio_id, found):
                return False
        async with self.sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            assert account is not None
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
                return False
            row = await store.order_by_client_id(session, vf.client_order_id)
            assert row is not None
            booked = await self._book(session, account, row, vf)
        self.seen.fill(portfolio_id, vf.trade_id)
        if booked is None:
            return False
        await self._after_fills([(booked, vf)])
        return True

    async def _after_fills(self, booked: list[tuple[dict[str, Any], VenueFill]]) -> None:
        """After the commit of booked fills: remember them, tell the listeners."""
        for row, vf in booked:
            self.seen.order(row)
            if row["status"] == OrderStatus.PARTIAL_FILL.value:
                self._fail.hit("trading.after_partial_fill")
            await self.listeners.filled(row, vf)

    async def _book(
        self, session: AsyncSession, account: dict[str, Any], row: dict[str, Any], vf: VenueFill
    ) -> dict[str, Any] | None:
        return await book_fill_row(session, self.outbox, account, row, vf, self.clock.now())

    async def adopt(self, portfolio_id: uuid.UUID, vo: VenueOrder) -> bool:
        """Record an order the venue has and we do not (placed outside the platform, or lost
        between the venue's accept and our commit). ``False`` when it cannot be attributed: the
        venue account is shared by several portfolios, so the order is logged, not guessed."""
        async with self.sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            assert account is not None
            if await store.order_by_client_id(session, vo.client_order_id) is not None:
                return True
            if account["connection_id"] is not None:
                sharing = await session.execute(
                    select(store.accounts.c.portfolio_id).where(
                        store.accounts.c.connection_id == account["connection_id"]
                    )
                )
                if len(sharing.all()) > 1:
                    log.warning(
                        "trading.order.unattributed",
                        client_order_id=vo.client_order_id,
                        connection_id=str(account["connection_id"]),
                    )
                    return False
            now = self.clock.now()
            order_id = uuid.uuid4()
            row = external_order_row(order_id, account, vo, now)
            await session.execute(store.INSERT_ORDER, row)
            await store.record_event(
                session, order_id, None, "submitted", accepted=True, detail="adopted", at=now
            )
            await self.outbox.add(session, order_event(OrderCreated, row))
        log.warning(
            "trading.order.adopted", client_order_id=vo.client_order_id, portfolio_id=str(portfolio_id)
        )
        return True

    async def sync_fills(
        self,
        portfolio_id: uuid.UUID,
        venue: Venue,
        *,
        symbol: str | None,
        since: datetime | None,
        client_order_id: str | None = None,
    ) -> int:
        """Apply the venue's fills since ``since`` (less a margin for clock skew) that are not
        booked yet: one query finds which are, so a long history costs one round trip."""
        since_ns = int((since - timedelta(minutes=5)).timestamp() * 1e9) if since is not None else None
        found = await venue.fills(symbol=symbol, since_ns=since_ns, client_order_id=client_order_id)
        booked: set[str] = set()
        ids = [f.trade_id for f in found]
        async with self.sessions() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(
                    select(store.fills.c.trade_id).where(
                        store.fills.c.portfolio_id == portfolio_id,
                        store.fills.c.trade_id.in_(ids[start : start + 500]),
                    )
                )
                booked.update(r[0] for r in rows)
        applied = 0
        for vf in found:
            if vf.trade_id not in booked:
                applied += await self.on_fill(portfolio_id, vf, venue=venue)
        return applied

    async def reconcile(self, account: dict[str, Any], venue: Venue) -> dict[str, int]:
        from algotrendy.services.trading.reconcile import reconcile

        return await reconcile(self, account, venue)
