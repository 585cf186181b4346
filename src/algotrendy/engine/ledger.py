"""A double-entry cash ledger with reservations for open orders (pure; the trading service
persists its postings).

Every change is a ``Transaction`` of postings that sum to zero per currency, so the ledger as a
whole sums to zero per currency, always. Accounts (per currency):

- ``cash``: money free to use;
- ``reserved``: money set aside for open buy orders (moved from ``cash`` when the order is placed,
  back when it is cancelled or filled);
- ``position:<symbol>``: the cost of what is held (negative for a short: what is owed);
- ``fees``: commissions paid;
- ``pnl``: realized profit (negative) or loss (positive): what a closing fill leaves over;
- ``external``: deposits and withdrawals (the world outside the account);
- ``credit``: what a fill beyond cash and reservation left owed (negative), see ``fill``.

Invariants the tests hold: postings sum to zero per currency; ``cash`` never goes negative (a
reservation or a fill that would need more is refused before anything is written); a
reservation is released exactly once. Balances follow the usual sign: assets positive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from algotrendy.engine.orders import OrderSide

ZERO = Decimal(0)
SCALE = Decimal("1e-12")
"""Every amount is kept to 12 decimal places (finer than any currency or crypto unit price needs),
so sums are exact: a 28-digit Decimal holds any balance below 1e16 at this scale."""


def _q(amount: Decimal) -> Decimal:
    return amount.quantize(SCALE, rounding=ROUND_HALF_EVEN)


class LedgerError(ValueError):
    """A transaction that cannot be written (insufficient cash, unknown reservation, ...)."""


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Transaction:
    txn_id: str
    kind: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for p in self.postings:
            totals[p.currency] += p.amount
        unbalanced = {c: t for c, t in totals.items() if t != ZERO}
        if unbalanced:
            raise LedgerError(f"transaction {self.txn_id} does not balance: {unbalanced}")


@dataclass(slots=True)
class Ledger:
    """Balances of one portfolio. ``apply`` is idempotent by transaction id."""

    balances: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    reservations: dict[str, tuple[str, Decimal]] = field(default_factory=dict)
    """order id -> (currency, amount still reserved)"""
    seen: set[str] = field(default_factory=set)
    journal: list[Transaction] = field(default_factory=list)

    def balance(self, account: str, currency: str) -> Decimal:
        return self.balances.get((account, currency), ZERO)

    def available(self, currency: str) -> Decimal:
        return self.balance("cash", currency)

    def total(self, currency: str) -> Decimal:
        """The sum of every account in ``currency``: zero, by construction."""
        return sum((v for (_a, c), v in self.balances.items() if c == currency), ZERO)

    def postings(self) -> Iterator[Posting]:
        for t in self.journal:
            yield from t.postings

    def apply(self, txn: Transaction) -> bool:
        """Write ``txn`` (``False`` if its id was already written). Refuses, before writing
        anything, one that would take ``cash`` below zero."""
        if txn.txn_id in self.seen:
            return False
        after: dict[tuple[str, str], Decimal] = {}
        for p in txn.postings:
            key = (p.account, p.currency)
            after[key] = after.get(key, self.balance(*key)) + p.amount
        for (account, currency), value in after.items():
            if account in ("cash", "reserved") and value < ZERO:
                raise LedgerError(
                    f"{txn.kind} {txn.txn_id}: {account} {currency} would be {value} "
                    f"(available {self.available(currency)})"
                )
        for key, value in after.items():
            self.balances[key] = value
        self.seen.add(txn.txn_id)
        self.journal.append(txn)
        return True

    # ---- the operations of a trading account ------------------------------------------------------

    def deposit(self, txn_id: str, currency: str, amount: Decimal) -> bool:
        amount = _q(amount)
        _positive(amount, "deposit")
        return self.apply(
            Transaction(
                txn_id, "deposit", (Posting("cash", currency, amount), Posting("external", currency, -amount))
            )
        )

    def withdraw(self, txn_id: str, currency: str, amount: Decimal) -> bool:
        amount = _q(amount)
        _positive(amount, "withdrawal")
        return self.apply(
            Transaction(
                txn_id,
                "withdraw",
                (Posting("cash", currency, -amount), Posting("external", currency, amount)),
            )
        )

    def reserve(self, order_id: str, currency: str, amount: Decimal) -> bool:
        """Set ``amount`` aside for a buy order (refused if cash does not cover it)."""
        amount = _q(amount)
        _positive(amount, "reservation")
        if order_id in self.reservations:
            return False
        self.apply(
            Transaction(
                f"reserve:{order_id}",
                "reserve",
                (Posting("cash", currency, -amount), Posting("reserved", currency, amount)),
            )
        )
        self.reservations[order_id] = (currency, amount)
        return True

    def release(self, order_id: str) -> Decimal:
        """Return what is still reserved for ``order_id`` to cash (cancel, expiry, done)."""
        held = self.reservations.pop(order_id, None)
        if held is None:
            return ZERO
        currency, amount = held
        if amount > ZERO:
            self.apply(
                Transaction(
                    f"release:{order_id}:{len(self.journal)}",
                    "release",
                    (Posting("reserved", currency, -amount), Posting("cash", currency, amount)),
                )
            )
        return amount

    def fill(
        self,
        fill_id: str,
        *,
        order_id: str | None,
        symbol: str,
        currency: str,
        side: OrderSide,
        notional: Decimal,
        fee: Decimal,
        basis: Decimal,
        allow_credit: bool = False,
    ) -> bool:
        """A fill. ``basis`` is the signed change of the position's cost that the caller's
        ``Position`` computed: ``+notional`` buying to open or add to a long, ``-(closed x average)``
        selling to reduce it; ``-notional`` selling to open or add to a short, ``+(closed x
        average)`` buying to cover. Realized P&L takes the difference. A buy pays from the order's
        reservation first, then cash. Idempotent by ``fill_id``.

        A fill is a fact at the venue: with ``allow_credit`` one that costs more than the
        reservation and cash together is still booked, the shortfall going to ``credit`` (what
        is owed, a negative balance) so that ``cash`` stays at or above zero."""
        if fill_id in self.seen:
            return False
        if notional < ZERO or fee < ZERO:
            raise LedgerError(f"fill {fill_id}: notional and fee must not be negative")
        notional, fee, basis = _q(notional), _q(fee), _q(basis)
        cash_change = -(notional + fee) if side is OrderSide.BUY else notional - fee
        from_reserved = ZERO
        if side is OrderSide.BUY and order_id is not None and order_id in self.reservations:
            from_reserved = min(self.reservations[order_id][1], -cash_change)
        cash_posting = cash_change + from_reserved
        shortfall = ZERO
        if allow_credit and self.balance("cash", currency) + cash_posting < ZERO:
            shortfall = -(self.balance("cash", currency) + cash_posting)
        postings = [
            Posting("reserved", currency, -from_reserved),
            Posting("cash", currency, cash_posting + shortfall),
            Posting("credit", currency, -shortfall),
            Posting(f"position:{symbol}", currency, basis),
            Posting("fees", currency, fee),
            Posting("pnl", currency, -(cash_change + basis + fee)),  # exact: the rest balances it
        ]
        self.apply(Transaction(fill_id, side.value.lower(), tuple(p for p in postings if p.amount)))
        if from_reserved and order_id is not None:
            held_currency, left = self.reservations[order_id]
            self.reservations[order_id] = (held_currency, left - from_reserved)
        return True


def _positive(amount: Decimal, what: str) -> None:
    if not amount > ZERO:
        raise LedgerError(f"a {what} must be a positive amount, got {amount}")
