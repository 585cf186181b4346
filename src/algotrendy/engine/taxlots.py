"""Tax lots from a fill history, lot selection for a planned sale (FIFO, LIFO, HIFO, tax-optimal)
and the 30-day wash-sale window (pure; long positions only).

Conventions (US-style lot accounting; every quantity and amount is a ``Decimal``, computed in
the default 28-digit context):

* **lots**: each buy fill opens a lot whose id is the fill's ``fill_id``, acquired at its ``at``,
  with ``cost_per_unit = (quantity * price + fee) / quantity``: the buy's fee is part of the
  cost basis. Fills are applied in time order (ties in the order given).
* **relief**: a sell relieves lots of its own symbol. By default FIFO (the oldest lot first).
  ``relief[sell fill_id]`` names specific lots ``(lot_id, quantity)``, relieved first in the
  order given; whatever of the sell they leave is relieved FIFO. Naming an unknown lot, a lot of
  another symbol, more than a lot holds, more than the sell's quantity, or a sell fill that does
  not exist raises ``ValueError`` (a typo would otherwise fall back to FIFO silently). A sell
  beyond the open lots raises too: shorts are out of scope.
* **disposals** (``disposals``): what each sell realized, per lot relieved; the sell's fee is
  spread over its lots in proportion to quantity (the last takes the rounding remainder), so
  ``proceeds = quantity * price - fee share`` and ``gain = proceeds - quantity * cost_per_unit``.
* **long term**: held **more than 365 days** (``sold_at - acquired_at > 365 days``).
* **wash sale**: a sale at a loss is a wash sale when the same symbol is bought within 30
  calendar days before or after it (day 30 is in, day 31 out), counting dates in the sale's
  time zone. A buy at exactly a lot's own ``acquired_at`` is that lot's purchase, not a
  replacement, and does not make that lot's sale a wash sale.
* **selection** (``select_lots``) for selling ``quantity`` at ``price`` at ``now``, proceeds gross
  of the sale's fee: ``fifo`` (oldest first), ``lifo`` (newest first), ``hifo`` (highest cost per
  unit first), ``tax_optimal``: losses first (short-term before long-term, the largest loss per
  unit first in each), then lots at no gain, then long-term gains (smallest gain per unit first),
  short-term gains last (smallest first). With ``avoid_wash_sales`` the loss lots whose sale
  would be a wash sale go after all the others. Ties keep FIFO order. The last lot picked may
  be split.

Why our own code: the selection rules are a sort key each, and the libraries that do lot
accounting are full bookkeeping systems (beancount) rather than functions on a fill list.

Bad input raises ``ValueError`` naming the field, fill, lot or symbol, which the API reports as
422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

ZERO = Decimal(0)
LONG_TERM = timedelta(days=365)
WASH_SALE_DAYS = 30
SelectMethod = Literal["fifo", "lifo", "hifo", "tax_optimal"]
SELECT_METHODS: tuple[SelectMethod, ...] = ("fifo", "lifo", "hifo", "tax_optimal")


@dataclass(frozen=True, slots=True)
class Fill:
    at: datetime
    symbol: str
    side: Literal["buy", "sell"]
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fill_id: str


@dataclass(frozen=True, slots=True)
class Lot:
    lot_id: str
    symbol: str
    quantity: Decimal
    cost_per_unit: Decimal
    acquired_at: datetime


@dataclass(frozen=True, slots=True)
class LotPick:
    lot_id: str
    quantity: Decimal
    cost_per_unit: Decimal
    proceeds: Decimal
    gain: Decimal
    long_term: bool
    wash_sale: bool


@dataclass(frozen=True, slots=True)
class Disposal:
    """One lot (or part of one) relieved by a sell fill."""

    fill_id: str
    lot_id: str
    symbol: str
    quantity: Decimal
    cost_per_unit: Decimal
    proceeds: Decimal
    gain: Decimal
    acquired_at: datetime
    sold_at: datetime
    long_term: bool


Relief = Mapping[str, Sequence[tuple[str, Decimal]]]


def _check_fill(f: Fill) -> None:
    where = f"fill {f.fill_id!r}"
    if f.side not in ("buy", "sell"):
        raise ValueError(f"{where}: side must be 'buy' or 'sell', got {f.side!r}")
    if not f.symbol:
        raise ValueError(f"{where}: symbol is empty")
    for name, v in (("quantity", f.quantity), ("price", f.price), ("fee", f.fee)):
        if not isinstance(v, Decimal) or not v.is_finite():
            raise ValueError(f"{where}: {name} must be a finite Decimal, got {v!r}")
    if f.quantity <= 0:
        raise ValueError(f"{where}: quantity must be positive, got {f.quantity}")
    if f.price < 0:
        raise ValueError(f"{where}: price must not be negative, got {f.price}")
    if f.fee < 0:
        raise ValueError(f"{where}: fee must not be negative, got {f.fee}")


class _Book:
    """Open lots per symbol, in acquisition order, with their remaining quantities."""

    def __init__(self) -> None:
        self.lots: dict[str, Lot] = {}
        self.left: dict[str, Decimal] = {}
        self.order: dict[str, list[str]] = {}

    def buy(self, f: Fill) -> None:
        if f.fill_id in self.lots:
            raise ValueError(f"fill {f.fill_id!r}: fill_id appears twice")
        cost = (f.quantity * f.price + f.fee) / f.quantity
        self.lots[f.fill_id] = Lot(f.fill_id, f.symbol, f.quantity, cost, f.at)
        self.left[f.fill_id] = f.quantity
        self.order.setdefault(f.symbol, []).append(f.fill_id)

    def sell(self, f: Fill, named: Sequence[tuple[str, Decimal]]) -> list[tuple[Lot, Decimal]]:
        where = f"fill {f.fill_id!r}"
        taken: list[tuple[Lot, Decimal]] = []
        need = f.quantity
        for lot_id, q in named:
            lot = self.lots.get(lot_id)
            if lot is None or lot.acquired_at > f.at:
                raise ValueError(f"relief[{f.fill_id!r}]: no open lot {lot_id!r} before the sale")
            if lot.symbol != f.symbol:
                raise ValueError(
                    f"relief[{f.fill_id!r}]: lot {lot_id!r} is {lot.symbol}, the sell is {f.symbol}"
                )
            if not isinstance(q, Decimal) or not q.is_finite() or q <= 0:
                raise ValueError(f"relief[{f.fill_id!r}]: quantity for lot {lot_id!r} must be positive")
            if q > self.left[lot_id]:
                raise ValueError(
                    f"relief[{f.fill_id!r}]: lot {lot_id!r} holds {self.left[lot_id]}, asked for {q}"
                )
            if q > need:
                raise ValueError(f"relief[{f.fill_id!r}]: names more than the sell's quantity {f.quantity}")
            self.left[lot_id] -= q
            need -= q
            taken.append((lot, q))
        for lot_id in self.order.get(f.symbol, []):
            if need == 0:
                break
            q = min(self.left[lot_id], need)
            if q > 0:
                self.left[lot_id] -= q
                need -= q
                taken.append((self.lots[lot_id], q))
        if need > 0:
            raise ValueError(
                f"{where}: sells {f.quantity} {f.symbol} but only {f.quantity - need} is held "
                "(short sales are out of scope)"
            )
        return taken

    def open(self) -> list[Lot]:
        out = []
        for ids in self.order.values():
            for lot_id in ids:
                q = self.left[lot_id]
                if q > 0:
                    lot = self.lots[lot_id]
                    out.append(Lot(lot.lot_id, lot.symbol, q, lot.cost_per_unit, lot.acquired_at))
        return out


def _replay(fills: Iterable[Fill], relief: Relief | None) -> tuple[_Book, list[Disposal]]:
    ordered = sorted(fills, key=lambda f: f.at)
    relief = relief or {}
    sells = {f.fill_id for f in ordered if f.side == "sell"}
    for fill_id in relief:
        if fill_id not in sells:
            raise ValueError(f"relief[{fill_id!r}]: no sell fill with that id")
    book = _Book()
    out: list[Disposal] = []
    seen_sells: set[str] = set()
    for f in ordered:
        _check_fill(f)
        if f.side == "buy":
            if f.fill_id in seen_sells:
                raise ValueError(f"fill {f.fill_id!r}: fill_id appears twice")
            book.buy(f)
            continue
        if f.fill_id in seen_sells or f.fill_id in book.lots:
            raise ValueError(f"fill {f.fill_id!r}: fill_id appears twice")
        seen_sells.add(f.fill_id)
        taken = book.sell(f, relief.get(f.fill_id, ()))
        fee_left = f.fee
        for i, (lot, q) in enumerate(taken):
            fee = fee_left if i == len(taken) - 1 else f.fee * q / f.quantity
            fee_left -= fee
            proceeds = q * f.price - fee
            out.append(
                Disposal(
                    f.fill_id,
                    lot.lot_id,
                    f.symbol,
                    q,
                    lot.cost_per_unit,
                    proceeds,
                    proceeds - q * lot.cost_per_unit,
                    lot.acquired_at,
                    f.at,
                    f.at - lot.acquired_at > LONG_TERM,
                )
            )
    return book, out


def open_lots(fills: Iterable[Fill], relief: Relief | None = None) -> list[Lot]:
    """The lots still open after ``fills`` (per symbol in acquisition order), with the remaining
    quantities."""
    book, _ = _replay(fills, relief)
    return book.open()


def disposals(fills: Iterable[Fill], relief: Relief | None = None) -> list[Disposal]:
    """What every sell in ``fills`` realized, lot by lot (in the order the sells happened)."""
    _, out = _replay(fills, relief)
    return out


def buy_times(fills: Iterable[Fill], symbol: str) -> list[datetime]:
    """When ``symbol`` was bought (for ``select_lots``'s ``buys_nearby``)."""
    return sorted(f.at for f in fills if f.side == "buy" and f.symbol == symbol)


def _day(at: datetime, ref: datetime) -> date:
    if (at.tzinfo is None) != (ref.tzinfo is None):
        raise ValueError("datetimes must all be timezone-aware or all naive")
    return (at.astimezone(ref.tzinfo) if ref.tzinfo is not None else at).date()


def wash_sale_days(sold_at: datetime, other: datetime) -> int:
    """Calendar days from the sale to ``other`` (negative before it), in the sale's time zone."""
    return (_day(other, sold_at) - _day(sold_at, sold_at)).days


def in_wash_sale_window(sold_at: datetime, bought_at: datetime) -> bool:
    """Whether a buy at ``bought_at`` is within 30 calendar days before or after a sale."""
    return abs(wash_sale_days(sold_at, bought_at)) <= WASH_SALE_DAYS


def wash_sale_window(
    fills: Iterable[Fill], symbol: str, buy_at: datetime, relief: Relief | None = None
) -> list[Disposal]:
    """The loss disposals of ``symbol`` that a buy at ``buy_at`` would turn into wash sales because
    it falls 0 to 30 calendar days after them (empty: no warning). For the rebalancer, to warn
    about a planned buy."""
    out = []
    for d in disposals(fills, relief):
        if d.symbol == symbol and d.gain < 0 and 0 <= wash_sale_days(d.sold_at, buy_at) <= WASH_SALE_DAYS:
            out.append(d)
    return out


def select_lots(
    lots: Sequence[Lot],
    quantity: Decimal,
    price: Decimal,
    now: datetime,
    method: SelectMethod | str,
    *,
    buys_nearby: Sequence[datetime] = (),
    avoid_wash_sales: bool = False,
) -> list[LotPick]:
    """The lots to sell ``quantity`` at ``price`` at ``now`` from, by ``method`` (see the module
    docstring), the last one possibly in part. ``lots`` must all be of one symbol;
    ``buys_nearby`` are that symbol's past and planned buys (for the wash-sale flag)."""
    if method not in SELECT_METHODS:
        raise ValueError(f"unknown lot selection method {method!r}: one of {', '.join(SELECT_METHODS)}")
    for name, v in (("quantity", quantity), ("price", price)):
        if not isinstance(v, Decimal) or not v.is_finite():
            raise ValueError(f"{name} must be a finite Decimal, got {v!r}")
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, got {quantity}")
    if price < 0:
        raise ValueError(f"price must not be negative, got {price}")
    symbols = {lot.symbol for lot in lots}
    if len(symbols) > 1:
        raise ValueError(f"lots: all must be of one symbol, got {', '.join(sorted(symbols))}")
    ids = set()
    for lot in lots:
        if lot.lot_id in ids:
            raise ValueError(f"lots: lot {lot.lot_id!r} appears twice")
        ids.add(lot.lot_id)
        if lot.quantity <= 0:
            raise ValueError(f"lots: lot {lot.lot_id!r} has quantity {lot.quantity}")
    held = sum((lot.quantity for lot in lots), ZERO)
    if quantity > held:
        raise ValueError(f"quantity {quantity} is more than the lots hold ({held})")

    def long_term(lot: Lot) -> bool:
        return now - lot.acquired_at > LONG_TERM

    def wash(lot: Lot) -> bool:
        return lot.cost_per_unit > price and any(
            b != lot.acquired_at and in_wash_sale_window(now, b) for b in buys_nearby
        )

    fifo = sorted(range(len(lots)), key=lambda i: (lots[i].acquired_at, i))
    rank = {i: k for k, i in enumerate(fifo)}
    if method == "fifo":
        order = fifo
    elif method == "lifo":
        order = fifo[::-1]
    elif method == "hifo":
        order = sorted(fifo, key=lambda i: (-lots[i].cost_per_unit, rank[i]))
    else:

        def key(i: int) -> tuple[int, Decimal, int]:
            lot = lots[i]
            gain = price - lot.cost_per_unit
            lt = long_term(lot)
            if gain < 0:
                last = 5 if avoid_wash_sales and wash(lot) else 0
                return (last + (1 if lt else 0), gain, rank[i])
            if gain == 0:
                return (2, gain, rank[i])
            return (3 if lt else 4, gain, rank[i])

        order = sorted(fifo, key=key)

    picks: list[LotPick] = []
    need = quantity
    for i in order:
        if need == 0:
            break
        lot = lots[i]
        q = min(lot.quantity, need)
        need -= q
        proceeds = q * price
        picks.append(
            LotPick(
                lot.lot_id,
                q,
                lot.cost_per_unit,
                proceeds,
                proceeds - q * lot.cost_per_unit,
                long_term(lot),
                wash(lot),
            )
        )
    return picks
