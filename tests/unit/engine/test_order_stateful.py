"""A Hypothesis state machine over one ``Decimal`` order: every transition target from every
state, fills of random size (new, replayed, too large, of another order, non-positive, float),
against a model written from the spec, not from the code.

After every step: the order is where the model says; a refused event changed nothing (a full
snapshot of the order's fields, ``repr`` included so even a Decimal's exponent counts); the
filled quantity and the fees are the exact sums of the unique fills applied; ``0 <= filled <=
quantity``; a final state accepts no transition; the average price is the quantity-weighted
mean of the applied fill prices (see ``test_average_price_is_the_correctly_rounded_vwap`` for
what "exactly" does and does not hold).
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from algotrendy.engine.orders import (
    Fill,
    InvalidTransition,
    Order,
    OrderError,
    OrderSide,
    OrderStatus,
    OrderType,
)

S = OrderStatus

# The spec's table, written out here on purpose: the model must not read it from the code.
SPEC: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.CREATED: frozenset({S.VALIDATED, S.REJECTED}),
    S.VALIDATED: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.PARTIAL_FILL, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.PARTIAL_FILL: frozenset({S.PARTIAL_FILL, S.FILLED, S.CANCELLED, S.EXPIRED}),
}
FINAL = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
FILLABLE = frozenset({S.SUBMITTED, S.PARTIAL_FILL})
ZERO = Decimal(0)


def decimals(max_units: int = 10**6, max_places: int = 8) -> st.SearchStrategy[Decimal]:
    """Positive Decimals with up to ``max_places`` decimal places (crypto-sized lots, cents...)."""
    return st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(1, max_units),
        st.integers(0, max_places),
    )


quantities = decimals()
prices = decimals(max_units=10**7, max_places=4)
fees = st.one_of(st.just(ZERO), decimals(max_units=10**4, max_places=6))


def snapshot(o: Order[Decimal]) -> tuple[tuple[str, str], ...]:
    """Every field of the order, by ``repr`` (sets sorted): a refused event must leave all equal."""
    out = []
    for f in dataclasses.fields(o):
        value = getattr(o, f.name)
        out.append((f.name, repr(sorted(value)) if isinstance(value, set) else repr(value)))
    return tuple(out)


def vwap(applied: dict[str, Fill[Decimal]]) -> Fraction:
    notional = sum((Fraction(f.price) * Fraction(f.quantity) for f in applied.values()), Fraction(0))
    volume = sum((Fraction(f.quantity) for f in applied.values()), Fraction(0))
    return notional / volume


class OrderStateMachine(RuleBasedStateMachine):
    """One Decimal order and a model of it: status by the spec table, fills by id."""

    order: Order[Decimal]

    @initialize(
        quantity=st.one_of(st.just(ZERO), quantities),
        side=st.sampled_from(OrderSide),
        reason=st.one_of(st.none(), st.just("initial")),
    )
    def build(self, quantity: Decimal, side: OrderSide, reason: str | None) -> None:
        self.order = Order("o1", "BTC-USD", side, OrderType.MARKET, quantity, reason=reason)
        self.side = side
        self.status = S.CREATED
        self.reason = reason
        self.applied: dict[str, Fill[Decimal]] = {}
        self.refused: list[tuple[Fill[Any], type[Exception]]] = []
        self.status_from_fill = False
        """True while the last status change came from ``apply_fill`` (not ``transition``)."""
        self.ids = itertools.count()

    # ---- helpers ----------------------------------------------------------------------------

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.applied.values()), ZERO)

    @property
    def remaining(self) -> Decimal:
        return self.order.quantity - self.filled

    def new_id(self) -> str:
        return f"f{next(self.ids)}"

    def make_fill(
        self, quantity: object, price: object = None, fee: object = ZERO, **kw: object
    ) -> Fill[Any]:
        return Fill(
            str(kw.get("fill_id") or self.new_id()),
            str(kw.get("order_id", "o1")),
            "BTC-USD",
            self.side,
            quantity,
            Decimal(100) if price is None else price,
            fee,
        )

    def expect_refused(self, fill: Fill[Any], error: type[Exception] | tuple[type[Exception], ...]) -> None:
        before = snapshot(self.order)
        with pytest.raises(error):
            self.order.apply_fill(fill)
        assert snapshot(self.order) == before, "a refused fill changed the order"

    def expected_error(self, fill: Fill[Decimal]) -> type[Exception] | None:
        """What the spec says a new (unseen id, right order) Decimal fill does: None = applies."""
        if fill.quantity <= 0 or fill.quantity > self.remaining:
            return OrderError  # plain OrderError, not a transition error
        if self.status not in FILLABLE:
            return InvalidTransition
        return None

    def apply_new(self, fill: Fill[Decimal]) -> None:
        error = self.expected_error(fill)
        if error is not None:
            before = snapshot(self.order)
            with pytest.raises(error) as err:
                self.order.apply_fill(fill)
            if error is OrderError:  # size errors come before, and are not, transition errors
                assert not isinstance(err.value, InvalidTransition)
            assert snapshot(self.order) == before, "a refused fill changed the order"
            self.refused.append((fill, error))
            return
        completes = fill.quantity == self.remaining
        assert self.order.apply_fill(fill) is True
        self.applied[fill.fill_id] = fill
        self.status = S.FILLED if completes else S.PARTIAL_FILL
        self.status_from_fill = True
        assert self.order.status is self.status

    # ---- rules ------------------------------------------------------------------------------

    @rule(to=st.sampled_from(OrderStatus), reason=st.one_of(st.none(), st.sampled_from(["r1", "r2"])))
    def transition(self, to: OrderStatus, reason: str | None) -> None:
        o = self.order
        allowed = to in SPEC.get(self.status, frozenset())
        assert o.can_transition(to) is allowed
        before = snapshot(o)
        if not allowed:
            with pytest.raises(InvalidTransition) as err:
                o.transition(to, reason=reason)
            assert (err.value.order_id, err.value.current, err.value.target) == ("o1", self.status, to)
            assert snapshot(o) == before, "a refused transition changed the order"
            return
        o.transition(to, reason=reason)
        self.status = to
        self.status_from_fill = False
        if reason is not None:
            self.reason = reason
        # Only status and reason may have moved.
        changed = {name for (name, a), (_, b) in zip(before, snapshot(o), strict=True) if a != b}
        assert changed <= {"status", "reason"}

    @precondition(lambda self: self.status in (S.CREATED, S.VALIDATED))
    @rule()
    def submit(self) -> None:
        """The happy path to ``submitted`` (random targets alone reach it rarely)."""
        for target in (S.VALIDATED, S.SUBMITTED):
            if self.status is S.SUBMITTED:
                break
            if target in SPEC[self.status]:
                self.order.transition(target)
                self.status = target
                self.status_from_fill = False

    @rule(data=st.data(), price=prices, fee=fees)
    def fill_part_of_what_remains(self, data: st.DataObject, price: Decimal, fee: Decimal) -> None:
        remaining = self.remaining
        if remaining > 0:
            # A fraction of what remains, kept to the remaining quantity's places (exact).
            places = max(0, -remaining.as_tuple().exponent)  # type: ignore[operator]
            step = Decimal(1).scaleb(-places)
            units = int(remaining / step)
            quantity = step * data.draw(st.integers(1, units), label="units")
        else:
            quantity = data.draw(quantities, label="quantity")
        self.apply_new(self.make_fill(quantity, price, fee))

    @rule(price=prices, fee=fees)
    def fill_exactly_what_remains(self, price: Decimal, fee: Decimal) -> None:
        remaining = self.remaining
        quantity = remaining if remaining > 0 else Decimal("0.00000001")
        self.apply_new(self.make_fill(quantity, price, fee))

    @rule(quantity=quantities, price=prices, fee=fees)
    def fill_any_size(self, quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        self.apply_new(self.make_fill(quantity, price, fee))

    @rule(excess=quantities, price=prices)
    def fill_too_large(self, excess: Decimal, price: Decimal) -> None:
        fill = self.make_fill(self.remaining + excess, price)
        assert self.expected_error(fill) is OrderError
        self.apply_new(fill)

    @precondition(lambda self: self.applied)
    @rule(
        data=st.data(),
        quantity=st.one_of(st.none(), quantities),
        price=st.one_of(st.none(), prices),
        other_order=st.booleans(),
    )
    def replay_an_applied_fill(
        self, data: st.DataObject, quantity: Decimal | None, price: Decimal | None, other_order: bool
    ) -> None:
        """A fill id seen before is ignored, whatever the redelivery carries (by id, not content)."""
        original = data.draw(st.sampled_from(sorted(self.applied.values(), key=lambda f: f.fill_id)))
        replay = dataclasses.replace(
            original,
            quantity=original.quantity if quantity is None else quantity,
            price=original.price if price is None else price,
            order_id="o2" if other_order else original.order_id,
        )
        before = snapshot(self.order)
        assert self.order.apply_fill(replay) is False
        assert self.order.apply_fill(original) is False
        assert snapshot(self.order) == before

    @precondition(lambda self: self.refused)
    @rule(data=st.data())
    def retry_a_refused_fill(self, data: st.DataObject) -> None:
        """A refused fill's id was not recorded: retried, it is judged afresh by the current state."""
        fill, _ = data.draw(st.sampled_from(self.refused))
        if fill.fill_id in self.applied:  # applied on an earlier retry: now a duplicate
            before = snapshot(self.order)
            assert self.order.apply_fill(fill) is False
            assert snapshot(self.order) == before
        elif fill.order_id == "o1" and all(
            isinstance(v, Decimal) for v in (fill.quantity, fill.price, fill.fee)
        ):
            self.apply_new(fill)
        else:
            self.expect_refused(fill, (OrderError, TypeError))

    @rule(quantity=quantities)
    def fill_of_another_order(self, quantity: Decimal) -> None:
        fill = self.make_fill(quantity, order_id="o2")
        self.expect_refused(fill, OrderError)
        self.refused.append((fill, OrderError))

    @rule(quantity=st.one_of(st.just(ZERO), st.just(Decimal("-0")), quantities.map(lambda q: -q)))
    def fill_of_a_non_positive_quantity(self, quantity: Decimal) -> None:
        fill = self.make_fill(quantity)
        self.expect_refused(fill, OrderError)
        self.refused.append((fill, OrderError))

    @rule(
        which=st.sampled_from(["quantity", "price", "fee"]),
        value=st.floats(min_value=1e-8, max_value=1e6, allow_nan=False, allow_infinity=False),
        quantity=quantities,
    )
    def float_fill_on_a_decimal_order(self, which: str, value: float, quantity: Decimal) -> None:
        """Mixing float into a Decimal order raises (TypeError, or OrderError where a comparison
        already refuses it) and changes nothing."""
        q = self.remaining if self.remaining > 0 else quantity
        kwargs: dict[str, object] = {"quantity": q, "price": Decimal(100), "fee": ZERO}
        kwargs[which] = value
        fill = self.make_fill(**kwargs)
        self.expect_refused(fill, (TypeError, OrderError))
        self.refused.append((fill, TypeError))

    # ---- invariants ---------------------------------------------------------------------------

    @invariant()
    def status_and_reason_follow_the_model(self) -> None:
        assert self.order.status is self.status
        assert self.order.reason == self.reason
        assert self.order.status.is_final is (self.status in FINAL)
        assert self.order.status.is_open is (self.status not in FINAL)

    @invariant()
    def totals_are_the_exact_sums_of_the_unique_fills(self) -> None:
        o = self.order
        assert isinstance(o.filled_quantity, Decimal)
        assert isinstance(o.fees, Decimal)
        assert o.fill_ids == set(self.applied)
        assert o.filled_quantity == self.filled
        assert o.fees == sum((f.fee for f in self.applied.values()), ZERO)
        assert ZERO <= o.filled_quantity <= o.quantity
        assert o.remaining == o.quantity - o.filled_quantity

    @invariant()
    def filled_status_matches_the_filled_quantity(self) -> None:
        o = self.order
        if self.applied:
            # Fills only ever land on a submitted or partly filled order.
            assert o.status in (S.PARTIAL_FILL, S.FILLED, S.CANCELLED, S.EXPIRED)
            if o.filled_quantity == o.quantity:
                assert o.status is S.FILLED
        if self.status_from_fill:
            assert o.filled_quantity is not None
            assert (o.status is S.FILLED) is (o.filled_quantity == o.quantity)
            assert (o.status is S.PARTIAL_FILL) is (o.filled_quantity < o.quantity)

    @invariant()
    def a_final_state_accepts_no_transition(self) -> None:
        o = self.order
        if not o.status.is_final:
            return
        before = snapshot(o)
        for target in OrderStatus:
            assert not o.can_transition(target)
            with pytest.raises(InvalidTransition):
                o.transition(target, reason="too late")
        assert snapshot(o) == before

    @invariant()
    def average_price_is_the_weighted_mean_of_the_fills(self) -> None:
        o = self.order
        if not self.applied:
            assert o.average_price is None
            return
        assert isinstance(o.average_price, Decimal)
        fill_prices = {f.price for f in self.applied.values()}
        if len(fill_prices) == 1:
            assert o.average_price == fill_prices.pop()  # one price: exact, always
        exact = vwap(self.applied)
        # The notional is summed exactly and divided once: within one unit in the 28th digit.
        error = abs(Fraction(o.average_price) - exact)
        bound = exact * Fraction(1, 10**27)
        note(f"average {o.average_price} vs exact {float(exact)!r}: error {float(error)!r}")
        assert error <= bound


OrderStateMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOrderStateMachine = OrderStateMachine.TestCase


# ---- the one place "exact" fails: the running average rounds at every fill -----------------------


def _submitted(quantity: Decimal) -> Order[Decimal]:
    o: Order[Decimal] = Order("o1", "X", OrderSide.BUY, OrderType.MARKET, quantity)
    o.transition(S.VALIDATED)
    o.transition(S.SUBMITTED)
    return o


def test_average_price_is_the_correctly_rounded_vwap() -> None:
    """Fills 1@0, 2@2, 1@0 on an order of 4: the VWAP is (0 + 4 + 0) / 4 = 1 exactly, but the
    a running mean would go 0 -> 4/3 (rounded to 1.333333333333333333333333333) -> that * 3 / 4 =
    0.99999999999999999999999999975, rounded to 0.9999999999999999999999999998."""
    fills = [(Decimal(1), Decimal(0)), (Decimal(2), Decimal(2)), (Decimal(1), Decimal(0))]
    o = _submitted(Decimal(4))
    for k, (quantity, price) in enumerate(fills):
        assert o.apply_fill(Fill(f"f{k}", "o1", "X", OrderSide.BUY, quantity, price, ZERO))
    expected = sum((q * p for q, p in fills), ZERO) / sum((q for q, _ in fills), ZERO)
    assert expected == Decimal(1)
    assert o.average_price == expected


def test_the_average_does_not_depend_on_the_order_of_the_fills() -> None:
    """The same three fills in another order give the same, exact average."""

    def average(order: list[tuple[int, int]]) -> Decimal | None:
        o = _submitted(Decimal(4))
        for k, (q, p) in enumerate(order):
            o.apply_fill(Fill(f"f{k}", "o1", "X", OrderSide.BUY, Decimal(q), Decimal(p), ZERO))
        return o.average_price

    assert average([(1, 0), (1, 0), (2, 2)]) == Decimal(1)
    assert average([(1, 0), (2, 2), (1, 0)]) == Decimal(1)
