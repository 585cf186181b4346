"""Persistence of the engine's ledger and positions: load them for one account inside a
transaction, let ``engine.ledger.Ledger`` / ``engine.positions.Position`` do the arithmetic (the
one implementation of those rules), and write back what changed.

Every function here runs inside the caller's transaction, after ``store.lock_account``, so a
fill, its position change, its ledger postings and its outbox events commit together or not at
all (RELIABILITY G3, G4, G7).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.engine.ledger import Ledger
from algotrendy.engine.orders import Fill, OrderSide
from algotrendy.engine.positions import Position
from algotrendy.services.trading import store

ZERO = Decimal(0)


@dataclass
class Books:
    """One account's ledger as loaded, and how to write back what changed."""

    portfolio_id: uuid.UUID
    ledger: Ledger
    _journal_start: int
    _reserved_before: dict[str, tuple[str, Decimal]]
    _balances_before: dict[tuple[str, str], Decimal]

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        portfolio_id: uuid.UUID,
        *,
        order_id: uuid.UUID | None = None,
        balances: dict[tuple[str, str], Decimal] | None = None,
    ) -> Books:
        """The account's balances (``balances`` when the caller read them in this transaction)
        and reservations: all of them, or only ``order_id``'s when only that order's matters
        (a fill or the end of that order; a new order has none yet: ``order_id`` of a new id).
        Reservations are per order, so the ones not loaded are neither read nor written."""
        if balances is None:
            balances = await store.balance_rows(session, portfolio_id)
        reservations = await store.reservation_rows(session, portfolio_id, order_id)
        ledger = Ledger()
        ledger.balances.update(balances)
        ledger.reservations.update(reservations)
        return cls(portfolio_id, ledger, 0, dict(reservations), dict(balances))

    @classmethod
    def new_order(cls, portfolio_id: uuid.UUID, balances: dict[tuple[str, str], Decimal]) -> Books:
        """The books for placing a new order: the balances as read in this transaction and no
        reservation (the new order has none yet; the others are not touched)."""
        ledger = Ledger()
        ledger.balances.update(balances)
        return cls(portfolio_id, ledger, 0, {}, dict(balances))

    async def save(self, session: AsyncSession, now: datetime) -> None:
        new = self.ledger.journal[self._journal_start :]
        if new:
            await session.execute(
                store.INSERT_LEDGER,
                [
                    {
                        "portfolio_id": self.portfolio_id,
                        "txn_id": t.txn_id,
                        "kind": t.kind,
                        "account": p.account,
                        "currency": p.currency,
                        "amount": p.amount,
                        "created_at": now,
                    }
                    for t in new
                    for p in t.postings
                ],
            )
        changed = []
        for key, value in self.ledger.balances.items():
            before = self._balances_before.get(key)
            if before == value:
                continue
            account, currency = key
            if before is None:
                await session.execute(
                    store.INSERT_BALANCE,
                    {
                        "portfolio_id": self.portfolio_id,
                        "account": account,
                        "currency": currency,
                        "amount": value,
                    },
                )
            else:
                changed.append(
                    {
                        "b_pid": self.portfolio_id,
                        "b_account": account,
                        "b_currency": currency,
                        "b_amount": value,
                    }
                )
        if changed:
            await session.execute(store.UPDATE_BALANCE, changed)
        now_reserved = self.ledger.reservations
        for order_id, before_res in self._reserved_before.items():
            if order_id not in now_reserved:
                await session.execute(store.DELETE_RESERVATION, {"r_id": uuid.UUID(order_id)})
            elif now_reserved[order_id] != before_res:
                await session.execute(
                    store.UPDATE_RESERVATION,
                    {"r_id": uuid.UUID(order_id), "r_amount": now_reserved[order_id][1]},
                )
        added = [
            {"order_id": uuid.UUID(oid), "portfolio_id": self.portfolio_id, "currency": c, "amount": a}
            for oid, (c, a) in now_reserved.items()
            if oid not in self._reserved_before
        ]
        if added:
            await session.execute(store.INSERT_RESERVATION, added)
        self._journal_start = len(self.ledger.journal)
        self._balances_before = dict(self.ledger.balances)
        self._reserved_before = dict(self.ledger.reservations)


def position_from_row(row: dict[str, Any] | None, symbol: str) -> Position[Decimal]:
    if row is None:
        return Position.flat(symbol, ZERO)
    return Position(
        symbol=symbol,
        quantity=row["quantity"],
        average_price=row["average_price"],
        realized_pnl=row["realized_pnl"],
        fees=row["fees"],
        entry_fees=row["entry_fees"],
    )


async def save_position(
    session: AsyncSession,
    *,
    row: dict[str, Any] | None,
    position: Position[Decimal],
    portfolio_id: uuid.UUID,
    owner_id: uuid.UUID,
    price: Decimal,
    now: datetime,
) -> tuple[uuid.UUID, str]:
    """Write ``position`` back; returns its id and what happened: ``opened``, ``updated``,
    ``closed`` (for the position events)."""
    was = row["quantity"] if row is not None else ZERO
    values = {
        "quantity": position.quantity,
        "average_price": position.average_price,
        "realized_pnl": position.realized_pnl,
        "fees": position.fees,
        "entry_fees": position.entry_fees,
        "last_price": price,
        "updated_at": now,
    }
    if was == ZERO and position.quantity != ZERO:
        kind = "opened"
        values["opened_at"] = now
    elif position.quantity == ZERO:
        kind = "closed"
    else:
        kind = "updated" if (was > 0) == (position.quantity > 0) else "opened"
        if kind == "opened":
            values["opened_at"] = now
    if row is None:
        position_id = uuid.uuid4()
        await session.execute(
            store.INSERT_POSITION,
            {
                "id": position_id,
                "portfolio_id": portfolio_id,
                "owner_id": owner_id,
                "symbol": position.symbol,
                **values,
            },
        )
        return position_id, kind
    await session.execute(store.UPDATE_POSITION, {**values, "p_id": row["id"]})
    return row["id"], kind


def book_fill(books: Books, position: Position[Decimal], fill: Fill[Decimal], currency: str) -> None:
    """Apply one fill to the position and the ledger (the basis comes from the position)."""
    before_qty, before_avg = position.quantity, position.average_price
    position.apply(fill)
    signed = fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
    basis = _basis(before_qty, before_avg, signed, fill.price)
    books.ledger.fill(
        fill.fill_id,
        order_id=fill.order_id,
        symbol=fill.symbol,
        currency=currency,
        side=fill.side,
        notional=fill.quantity * fill.price,
        fee=fill.fee,
        basis=basis,
        allow_credit=True,
    )


def _basis(qty: Decimal, avg: Decimal, signed: Decimal, price: Decimal) -> Decimal:
    """Signed change of the position's cost for a fill of ``signed`` units at ``price``."""
    if qty == ZERO or (qty > 0) == (signed > 0):
        return signed * price
    closing = min(abs(qty), abs(signed))
    closed_cost = closing * avg * (1 if qty > 0 else -1)
    rest = abs(signed) - closing
    opened = rest * price * (1 if signed > 0 else -1)
    return -closed_cost + opened


def ledger_totals(books: Books, currency: str) -> dict[str, Decimal]:
    ledger = books.ledger
    return {
        "cash": ledger.balance("cash", currency),
        "reserved": ledger.balance("reserved", currency),
        "fees": ledger.balance("fees", currency),
    }


def symbols_of(rows: Iterable[dict[str, Any]]) -> set[str]:
    return {r["symbol"] for r in rows}
