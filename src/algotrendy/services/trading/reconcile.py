"""Reconciliation: the venue's orders, fills and positions compared with ours, on start and
periodically (RELIABILITY G1: nothing the venue has is unknown here).

1. orders still ``pending`` or ``unknown`` are looked up by client order id: found, they are
   applied; not found after ``unknown_grace``, they were never placed (rejected, reservation
   released);
2. the venue's open orders we do not know are adopted (``Execution.adopt``);
3. our open orders the venue no longer lists open are looked up and brought up to date;
4. the venue's fills since our newest (less a margin) that we have not booked are booked;
5. positions, where the venue reports them, are compared: a difference the fills cannot explain
   halts the account (``trading.account.halted``) until its owner resumes it.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from algotrendy.core.venue import Venue
from algotrendy.engine.orders import OrderStatus
from algotrendy.services.trading import store
from algotrendy.services.trading.interface import AccountHalted, ReconciliationCompleted, VenueState

if TYPE_CHECKING:
    from algotrendy.services.trading.execution import Execution

log = structlog.get_logger(__name__)
ZERO = Decimal(0)
RECHECKS = 2


async def reconcile(ex: Execution, account: dict[str, Any], venue: Venue) -> dict[str, int]:
    pid: uuid.UUID = account["portfolio_id"]
    resolved = adopted = 0
    async with ex.sessions() as session:
        local_open = await store.open_orders(session, pid)
    for row in local_open:
        if row["venue_state"] == VenueState.ACKNOWLEDGED.value:
            continue
        found = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
        if found is not None:
            await ex.on_venue_order(pid, found, venue=venue)
            resolved += 1
        elif ex.clock.now() - row["created_at"] > ex.unknown_grace:
            await ex.finish(pid, row["id"], OrderStatus.REJECTED, "not placed: the venue has no such order")
            resolved += 1
    venue_open = {o.client_order_id: o for o in await venue.open_orders()}
    async with ex.sessions() as session:
        local_open = await store.open_orders(session, pid)
    known = {r["client_order_id"] for r in local_open}
    for cid, vo in venue_open.items():
        if cid not in known:
            async with ex.sessions() as session:
                exists = await store.order_by_client_id(session, cid)
            await ex.on_venue_order(pid, vo, venue=venue)
            if exists is None:
                async with ex.sessions() as session:
                    now_row = await store.order_by_client_id(session, cid)
                adopted += now_row is not None and now_row["portfolio_id"] == pid
    for row in local_open:
        if row["venue_state"] == VenueState.ACKNOWLEDGED.value and row["client_order_id"] not in venue_open:
            found = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
            if found is not None:
                await ex.on_venue_order(pid, found, venue=venue)
    async with ex.sessions() as session:
        last = (
            await session.execute(
                select(store.fills.c.executed_at)
                .where(store.fills.c.portfolio_id == pid)
                .order_by(store.fills.c.executed_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    fills_applied = await ex.sync_fills(pid, venue, symbol=None, since=last)
    diffs = await _position_diffs(ex, pid, venue)
    for _ in range(RECHECKS):
        if not diffs:
            break
        # A fill may land between our fill sync and the venue's position snapshot (a resting
        # order matching on a price update): sync again; only a lasting difference halts.
        fills_applied += await ex.sync_fills(pid, venue, symbol=None, since=last)
        diffs = await _position_diffs(ex, pid, venue)
    halted = bool(diffs)
    if halted:
        await _halt(ex, account, diffs)
    async with ex.sessions() as session, session.begin():
        await store.lock_account(session, pid)
        await session.execute(
            store.accounts.update()
            .where(store.accounts.c.portfolio_id == pid)
            .values(reconciled_at=ex.clock.now())
        )
        await ex.outbox.add(
            session,
            ReconciliationCompleted(
                portfolio_id=pid,
                owner_id=account["owner_id"],
                fills_applied=fills_applied,
                orders_adopted=adopted,
                orders_resolved=resolved,
                halted=halted,
            ),
        )
    return {
        "fills_applied": fills_applied,
        "orders_adopted": adopted,
        "orders_resolved": resolved,
        "halted": int(halted),
    }


async def _position_diffs(ex: Execution, pid: uuid.UUID, venue: Venue) -> dict[str, tuple[Decimal, Decimal]]:
    """Symbols whose quantity differs: ours, the venue's (none where the venue reports none)."""
    if not venue.reports_positions:
        return {}  # a spot exchange: fills are the only record to reconcile
    theirs = {p.symbol: p.quantity for p in await venue.positions() if p.quantity != ZERO}
    async with ex.sessions() as session:
        ours = {
            r["symbol"]: r["quantity"]
            for r in await store.position_rows(session, pid)
            if r["quantity"] != ZERO
        }
    diffs = {s: (ours.get(s, ZERO), theirs.get(s, ZERO)) for s in set(ours) | set(theirs)}
    return {s: d for s, d in diffs.items() if d[0] != d[1]}


async def _halt(ex: Execution, account: dict[str, Any], diffs: dict[str, tuple[Decimal, Decimal]]) -> None:
    pid = account["portfolio_id"]
    detail = ", ".join(f"{s}: ours {a}, venue {b}" for s, (a, b) in sorted(diffs.items()))
    reason = f"reconciliation: positions differ from the venue ({detail})"
    async with ex.sessions() as session, session.begin():
        await store.lock_account(session, pid)
        await session.execute(
            store.accounts.update()
            .where(store.accounts.c.portfolio_id == pid)
            .values(halted_reason=reason[:500])
        )
        await ex.outbox.add(
            session, AccountHalted(portfolio_id=pid, owner_id=account["owner_id"], reason=reason)
        )
    log.error("trading.account.halted", portfolio_id=str(pid), reason=reason)
