"""Fills delivered twice and out of order (a venue that replays its stream after a reconnect)
change the orders, the position and the ledger exactly once each.

Random fills for a few orders on one symbol (Hypothesis) are delivered twice each, shuffled with a
seeded ``random.Random`` (the seed is a drawn example value, so a failure prints it). A small
consumer, written the way the trading service should consume fills, dedups through
``Order.apply_fill`` (``False`` for an id it has seen) and only then moves the ``Position`` and
posts to the ``Ledger``; on a duplicate it also shows that the position and the ledger would have
refused it on their own (both dedup by id).

What must hold: position quantity is the signed sum of the unique fills (exactly: ``Decimal``);
fees are exact sums everywhere; the ledger sums to zero per currency after every delivery and cash
never goes negative when the account is funded for every reservation and fee; the end state equals
feeding the unique fills once in the same order (delivery order is all that matters, never the
duplicates), and, where the result is order independent (quantity, fees, cash; the average price of
same-side fills, exactly), equals feeding
them once in a canonical order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, note, settings
from hypothesis import strategies as st

from algotrendy.engine.ledger import Ledger, Transaction
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderStatus, OrderType
from algotrendy.engine.positions import Closed, Position

S = OrderStatus
ZERO = Decimal(0)
USD = "USD"
SYMBOL = "BTC-USD"
LEDGER_SCALE = Decimal("1e-10")
"""The ledger keeps 12 decimal places, ``Position`` 28 significant digits: they agree to this."""

SETTINGS = settings(max_examples=120, deadline=None, database=None, derandomize=False, print_blob=True)


# ---- scenarios --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSpec:
    order_id: str
    side: OrderSide
    fills: tuple[tuple[Decimal, Decimal, Decimal], ...]
    """(quantity, price, fee) of each fill of this order."""
    unfilled: Decimal
    """What is left on the order after all its fills (zero: the order fills completely)."""

    @property
    def quantity(self) -> Decimal:
        return sum((q for q, _, _ in self.fills), ZERO) + self.unfilled

    @property
    def limit_price(self) -> Decimal:
        fill_prices = [p for _, p, _ in self.fills]
        return max(fill_prices) if self.side is OrderSide.BUY else min(fill_prices)


quantities = st.builds(
    lambda units, places: Decimal(units).scaleb(-places), st.integers(1, 10**5), st.integers(0, 8)
)
prices = st.integers(1, 10**7).map(lambda cents: Decimal(cents) / 100)
fees = st.one_of(st.just(ZERO), st.integers(1, 10**5).map(lambda units: Decimal(units).scaleb(-4)))


@st.composite
def scenarios(draw: st.DrawFn, same_side: bool) -> list[OrderSpec]:
    first_side = draw(st.sampled_from(OrderSide))
    specs = []
    for k in range(draw(st.integers(1, 3))):
        side = first_side if same_side else draw(st.sampled_from(OrderSide))
        # A few price levels per order, so equal prices (and exact averages) come up too.
        levels = draw(st.lists(prices, min_size=1, max_size=3))
        fills = draw(st.lists(st.tuples(quantities, st.sampled_from(levels), fees), min_size=1, max_size=5))
        unfilled = draw(st.one_of(st.just(ZERO), quantities))
        specs.append(OrderSpec(f"o{k}", side, tuple(fills), unfilled))
    return specs


def fills_of(specs: list[OrderSpec]) -> list[Fill[Decimal]]:
    out = []
    for spec in specs:
        for j, (quantity, price, fee) in enumerate(spec.fills):
            out.append(
                Fill(f"{spec.order_id}-f{j}", spec.order_id, SYMBOL, spec.side, quantity, price, fee, index=j)
            )
    return out


def delivery(fills: list[Fill[Decimal]], seed: int) -> list[Fill[Decimal]]:
    """Every fill twice, shuffled (the second copy is an equal but distinct object)."""
    stream = [*fills, *(Fill(**{k: getattr(f, k) for k in f.__dataclass_fields__}) for f in fills)]
    random.Random(seed).shuffle(stream)
    return stream


# ---- the consumer -----------------------------------------------------------------------------


@dataclass
class Account:
    """Orders, one position and the ledger of one account, with the unique fills it applied."""

    orders: dict[str, Order[Decimal]]
    position: Position[Decimal]
    ledger: Ledger
    applied: list[Fill[Decimal]] = field(default_factory=list)
    duplicates: int = 0


def open_account(specs: list[OrderSpec]) -> Account:
    """Submitted orders; cash for every buy reservation and every fee; buy orders reserved."""
    orders = {}
    for spec in specs:
        o: Order[Decimal] = Order(
            spec.order_id, SYMBOL, spec.side, OrderType.LIMIT, spec.quantity, limit_price=spec.limit_price
        )
        o.transition(S.VALIDATED)
        o.transition(S.SUBMITTED)
        orders[spec.order_id] = o
    ledger = Ledger()
    reservations = {s.order_id: s.quantity * s.limit_price for s in specs if s.side is OrderSide.BUY}
    all_fees = sum((fee for s in specs for _, _, fee in s.fills), ZERO)
    assert ledger.deposit("funding", USD, sum(reservations.values(), ZERO) + all_fees + 1)
    for order_id, amount in reservations.items():
        assert ledger.reserve(order_id, USD, amount)
    return Account(orders, Position.flat(SYMBOL, ZERO), ledger)


def ledger_basis(fill: Fill[Decimal], closed: list[Closed[Decimal]]) -> Decimal:
    """The ledger's rule: what opens adds its notional, what closes takes out its cost."""
    shut = sum((c.quantity for c in closed), ZERO)
    opened = fill.side.sign * (fill.quantity - shut) * fill.price
    return opened - sum((c.side * c.quantity * c.entry_price for c in closed), ZERO)


def post(ledger: Ledger, fill: Fill[Decimal], basis: Decimal) -> bool:
    return ledger.fill(
        fill.fill_id,
        order_id=fill.order_id,
        symbol=fill.symbol,
        currency=USD,
        side=fill.side,
        notional=fill.quantity * fill.price,
        fee=fill.fee,
        basis=basis,
    )


def position_state(p: Position[Decimal]) -> tuple[object, ...]:
    return (
        repr(p.quantity),
        repr(p.average_price),
        repr(p.realized_pnl),
        repr(p.fees),
        repr(p.entry_fees),
        p.entry_index,
        frozenset(p.fill_ids),
    )


def ledger_state(led: Ledger) -> tuple[object, ...]:
    return (dict(led.balances), dict(led.reservations), frozenset(led.seen), len(led.journal))


def consume(account: Account, fill: Fill[Decimal]) -> bool:
    """Apply ``fill`` once: the order decides whether it is new; only a new fill moves the
    position and the ledger. A filled order's unused reservation goes back to cash."""
    order = account.orders[fill.order_id]
    if not order.apply_fill(fill):
        account.duplicates += 1
        # A consumer stops here. The position and the ledger would refuse it too, by id alone
        # (the ledger does not even look at the amounts: a nonsense basis is not checked).
        before = (position_state(account.position), ledger_state(account.ledger))
        assert account.position.apply(fill) == []
        assert post(account.ledger, fill, basis=Decimal("-12345.678")) is False
        assert (position_state(account.position), ledger_state(account.ledger)) == before
        return False
    closed = account.position.apply(fill)
    assert post(account.ledger, fill, ledger_basis(fill, closed)) is True
    if order.status is S.FILLED:
        account.ledger.release(order.id)
    account.applied.append(fill)
    return True


def close_out(account: Account) -> None:
    """Cancel what is still open and release its reservation."""
    for o in account.orders.values():
        if o.status.is_open:
            o.transition(S.CANCELLED)
        account.ledger.release(o.id)


def replay(specs: list[OrderSpec], stream: list[Fill[Decimal]]) -> Account:
    account = open_account(specs)
    for f in stream:
        consume(account, f)
        led = account.ledger
        assert led.total(USD) == 0, "the ledger must sum to zero per currency"
        assert led.available(USD) >= 0, "funded for every reservation and fee: cash never negative"
        assert led.balance("reserved", USD) >= 0
    close_out(account)
    return account


# ---- checks -----------------------------------------------------------------------------------


def vwap(fills: list[Fill[Decimal]]) -> Fraction:
    volume = sum((Fraction(f.quantity) for f in fills), Fraction(0))
    return sum((Fraction(f.price) * Fraction(f.quantity) for f in fills), Fraction(0)) / volume


def assert_near_vwap(average: Decimal | None, fills: list[Fill[Decimal]]) -> None:
    """Within one unit in the 28th digit of the exact VWAP (the cost is summed, divided once)."""
    assert average is not None
    exact = vwap(fills)
    assert abs(Fraction(average) - exact) <= exact * Fraction(1, 10**27)
    if len({f.price for f in fills}) == 1:
        assert average == fills[0].price  # one price: exact


def check_account(specs: list[OrderSpec], account: Account, *, delivered_twice: bool = True) -> None:
    unique = fills_of(specs)
    by_order = {s.order_id: [f for f in unique if f.order_id == s.order_id] for s in specs}
    assert {f.fill_id for f in account.applied} == {f.fill_id for f in unique}
    assert len(account.applied) == len(unique)
    assert account.duplicates == (len(unique) if delivered_twice else 0)
    # Orders: exact totals, filled iff nothing was left, otherwise cancelled after partial fills.
    for spec in specs:
        o = account.orders[spec.order_id]
        mine = by_order[spec.order_id]
        assert o.filled_quantity == sum((f.quantity for f in mine), ZERO)
        assert o.fees == sum((f.fee for f in mine), ZERO)
        assert o.fill_ids == {f.fill_id for f in mine}
        assert o.status is (S.FILLED if spec.unfilled == 0 else S.CANCELLED)
        assert_near_vwap(o.average_price, mine)
    # Position: the signed sum of the unique fills, exactly; fees exactly.
    p = account.position
    assert p.quantity == sum((f.side.sign * f.quantity for f in unique), ZERO)
    assert p.fees == sum((f.fee for f in unique), ZERO)
    assert p.fill_ids == {f.fill_id for f in unique}
    # Ledger: zero-sum, reservations all back, every fill posted once, cash to the cent.
    led = account.ledger
    assert led.total(USD) == 0
    assert led.balance("reserved", USD) == 0
    assert led.reservations == {}
    assert {f.fill_id for f in unique} <= led.seen
    assert led.balance("fees", USD) == p.fees
    funding = led.balance("external", USD) * -1
    cash_flow = sum((-f.side.sign * f.quantity * f.price - f.fee for f in unique), ZERO)
    assert led.available(USD) == funding + cash_flow
    assert abs(led.balance(f"position:{SYMBOL}", USD) - p.quantity * p.average_price) < LEDGER_SCALE
    assert abs(led.balance("pnl", USD) + p.realized_pnl) < LEDGER_SCALE
    # Realized P&L minus the cost of what is still held is the trading cash flow (gross of fees),
    # whatever the order of the fills.
    gross_flow = sum((-f.side.sign * f.quantity * f.price for f in unique), ZERO)
    assert abs(p.realized_pnl - p.quantity * p.average_price - gross_flow) < LEDGER_SCALE
    if p.quantity == 0:
        assert p.average_price == 0
        assert p.entry_fees == 0
    # The ledger's own idempotency: its whole journal written again changes nothing.
    before = ledger_state(led)
    for txn in list(led.journal):
        assert led.apply(Transaction(txn.txn_id, txn.kind, txn.postings)) is False
    assert led.deposit("funding", USD, Decimal(1)) is False
    assert ledger_state(led) == before


def assert_same_account(a: Account, b: Account) -> None:
    assert position_state(a.position) == position_state(b.position)
    assert ledger_state(a.ledger) == ledger_state(b.ledger)
    assert [t.txn_id for t in a.ledger.journal] == [t.txn_id for t in b.ledger.journal]
    for order_id, o in a.orders.items():
        other = b.orders[order_id]
        assert (o.status, o.filled_quantity, o.average_price, o.fees, o.fill_ids) == (
            other.status,
            other.filled_quantity,
            other.average_price,
            other.fees,
            other.fill_ids,
        )


# ---- the tests --------------------------------------------------------------------------------


@SETTINGS
@given(specs=scenarios(same_side=False), seed=st.integers(0, 2**32 - 1))
def test_fills_delivered_twice_and_shuffled_apply_once(specs: list[OrderSpec], seed: int) -> None:
    note(f"shuffle seed {seed}")
    stream = delivery(fills_of(specs), seed)
    account = replay(specs, stream)
    check_account(specs, account)
    # Duplicates change nothing: the same unique fills once, in the order they first arrived,
    # give the very same account (bit for bit, journal included).
    assert_same_account(account, replay(specs, list(account.applied)))
    # A consumer that skipped the order's dedup and fed everything to the position and the
    # ledger would still end in the same place: both dedup by id themselves.
    naive_position = Position.flat(SYMBOL, ZERO)
    for f in stream:
        naive_position.apply(f)
    assert position_state(naive_position) == position_state(account.position)


@SETTINGS
@given(specs=scenarios(same_side=True), seed=st.integers(0, 2**32 - 1))
def test_same_side_fills_end_where_the_canonical_order_ends(specs: list[OrderSpec], seed: int) -> None:
    """All fills on one side: nothing closes, so the position is order independent: quantity and
    fees exactly, no realized P&L, and the average entry is the correctly rounded VWAP."""
    note(f"shuffle seed {seed}")
    unique = fills_of(specs)
    shuffled = replay(specs, delivery(unique, seed))
    canonical = replay(specs, sorted(unique, key=lambda f: f.fill_id))
    check_account(specs, shuffled)
    check_account(specs, canonical, delivered_twice=False)
    a, b = shuffled.position, canonical.position
    assert a.quantity == b.quantity == specs[0].side.sign * sum((f.quantity for f in unique), ZERO)
    assert a.fees == b.fees
    assert a.entry_fees == b.entry_fees == a.fees
    assert a.realized_pnl == b.realized_pnl == 0
    assert_near_vwap(a.average_price, unique)
    assert_near_vwap(b.average_price, unique)
    for key in ("cash", "fees", "external", "reserved"):
        assert a_balance(shuffled, key) == a_balance(canonical, key)
    # Nothing closed, so the ledger's position account holds the exact notional, and no P&L.
    notional = sum((f.side.sign * f.quantity * f.price for f in unique), ZERO)
    assert a_balance(shuffled, f"position:{SYMBOL}") == notional
    assert a_balance(shuffled, "pnl") == 0


def a_balance(account: Account, name: str) -> Decimal:
    return account.ledger.balance(name, USD)


@SETTINGS
@given(specs=scenarios(same_side=False), seed=st.integers(0, 2**32 - 1))
def test_mixed_sides_agree_with_the_canonical_order_on_what_is_order_independent(
    specs: list[OrderSpec], seed: int
) -> None:
    """With buys and sells the realized P&L depends on which came first; what must not is the
    quantity, the fees and the cash, and realized P&L minus the open cost (the gross cash flow)."""
    note(f"shuffle seed {seed}")
    unique = fills_of(specs)
    shuffled = replay(specs, delivery(unique, seed))
    canonical = replay(specs, sorted(unique, key=lambda f: f.fill_id))
    a, b = shuffled.position, canonical.position
    assert a.quantity == b.quantity
    assert a.fees == b.fees
    for key in ("cash", "fees", "external", "reserved"):
        assert a_balance(shuffled, key) == a_balance(canonical, key)
    open_a = a.realized_pnl - a.quantity * a.average_price
    open_b = b.realized_pnl - b.quantity * b.average_price
    assert abs(open_a - open_b) < LEDGER_SCALE
    if a.quantity == 0:  # flat: the realized P&L is the whole trading result, in any order
        assert abs(a.realized_pnl - b.realized_pnl) < LEDGER_SCALE


# ---- the running average's rounding (same root cause as in ``Order.apply_fill``) ----------------


def test_same_side_average_price_is_exactly_order_independent() -> None:
    def average(order: list[tuple[int, int]]) -> Decimal:
        p = Position.flat("X", ZERO)
        for k, (q, price) in enumerate(order):
            p.apply(Fill(f"f{k}", "o", "X", OrderSide.BUY, Decimal(q), Decimal(price), ZERO))
        return p.average_price

    # VWAP of 1@0, 2@2, 1@0 is exactly 1 (a running mean would end at 0.99...98 in one order).
    assert average([(1, 0), (1, 0), (2, 2)]) == Decimal(1)
    assert average([(1, 0), (2, 2), (1, 0)]) == Decimal(1)  # fails: 0.9999999999999999999999999998
