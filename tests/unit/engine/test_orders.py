"""The order state machine (spec: "Order State Machine") and ``Order.apply_fill``.

Every pair of states is enumerated: the spec's transitions work, every other one raises
``InvalidTransition`` and leaves the order exactly as it was (RELIABILITY G5). Fills are keyed by
their id, so a fill delivered twice changes the order once (G3)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from algotrendy.engine.orders import (
    TRANSITIONS,
    Fill,
    InvalidTransition,
    Order,
    OrderError,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)

S = OrderStatus

# The spec's table, written out again here on purpose: the test must not read it from the code.
SPEC: dict[OrderStatus, set[OrderStatus]] = {
    S.CREATED: {S.VALIDATED, S.REJECTED},
    S.VALIDATED: {S.SUBMITTED, S.CANCELLED},
    S.SUBMITTED: {S.PARTIAL_FILL, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED},
    S.PARTIAL_FILL: {S.PARTIAL_FILL, S.FILLED, S.CANCELLED, S.EXPIRED},
}
TERMINAL = (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED)
ALLOWED = [(a, b) for a in S for b in S if b in SPEC.get(a, set())]
FORBIDDEN = [(a, b) for a in S for b in S if b not in SPEC.get(a, set())]


def order(status: OrderStatus = S.SUBMITTED, quantity: float = 10.0, **kw: object) -> Order[float]:
    o: Order[float] = Order(id="o1", symbol="X", side=OrderSide.BUY, type=OrderType.MARKET, quantity=quantity)
    for key, value in kw.items():
        setattr(o, key, value)
    o.status = status
    return o


def fill(
    fill_id: str, quantity: float, price: float = 100.0, fee: float = 0.0, order_id: str = "o1"
) -> Fill[float]:
    return Fill(fill_id, order_id, "X", OrderSide.BUY, quantity, price, fee)


def snapshot(o: Order) -> tuple:
    return (
        o.status,
        o.reason,
        o.quantity,
        o.filled_quantity,
        o.average_price,
        o.fees,
        frozenset(o.fill_ids),
    )


# ---- the transition table -------------------------------------------------------------------


def test_the_table_in_the_code_is_the_spec_table() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == SPEC
    assert len(ALLOWED) + len(FORBIDDEN) == len(S) ** 2 == 64
    assert len(ALLOWED) == 13


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_every_allowed_transition_works(current: OrderStatus, target: OrderStatus) -> None:
    o = order(current)
    assert o.can_transition(target)
    o.transition(target, reason="because")
    assert o.status is target
    assert o.reason == "because"


@pytest.mark.parametrize(("current", "target"), FORBIDDEN, ids=[f"{a}->{b}" for a, b in FORBIDDEN])
def test_every_other_transition_raises_and_changes_nothing(current: OrderStatus, target: OrderStatus) -> None:
    o = order(current, reason="before")
    before = snapshot(o)
    assert not o.can_transition(target)
    with pytest.raises(InvalidTransition) as err:
        o.transition(target, reason="after")
    assert snapshot(o) == before
    assert (err.value.order_id, err.value.current, err.value.target) == ("o1", current, target)
    assert f"{current.value} -> {target.value}" in str(err.value)
    assert isinstance(err.value, OrderError)


def test_a_transition_without_a_reason_keeps_the_previous_reason() -> None:
    o = order(S.SUBMITTED, reason="first")
    o.transition(S.PARTIAL_FILL)
    assert o.reason == "first"


@pytest.mark.parametrize("state", TERMINAL)
def test_terminal_states_have_no_way_out(state: OrderStatus) -> None:
    assert state.is_final
    assert not state.is_open
    assert state not in TRANSITIONS
    assert not any(order(state).can_transition(t) for t in S)


@pytest.mark.parametrize("state", [S.CREATED, S.VALIDATED, S.SUBMITTED, S.PARTIAL_FILL])
def test_open_states_are_open_and_not_final(state: OrderStatus) -> None:
    assert state.is_open
    assert not state.is_final


def test_the_happy_path_of_an_order_from_creation_to_filled() -> None:
    o: Order[float] = Order("o1", "X", OrderSide.BUY, OrderType.MARKET, 10.0)
    assert o.status is S.CREATED
    o.transition(S.VALIDATED)
    o.transition(S.SUBMITTED)
    assert o.apply_fill(fill("f1", 4.0))
    assert o.status is S.PARTIAL_FILL
    assert o.apply_fill(fill("f2", 6.0))
    assert o.status is S.FILLED


def test_a_created_order_cannot_be_cancelled_or_skip_validation() -> None:
    o = order(S.CREATED)
    for target in (S.CANCELLED, S.SUBMITTED, S.FILLED):
        with pytest.raises(InvalidTransition):
            o.transition(target)
    assert o.status is S.CREATED


def test_side_sign_and_opposite() -> None:
    assert OrderSide.BUY.sign == 1
    assert OrderSide.SELL.sign == -1
    assert OrderSide.BUY.opposite is OrderSide.SELL
    assert OrderSide.SELL.opposite is OrderSide.BUY


# ---- fills ------------------------------------------------------------------------------------


def test_a_full_fill_fills_the_order() -> None:
    o = order()
    assert o.apply_fill(fill("f1", 10.0, price=101.0, fee=1.5))
    assert o.status is S.FILLED
    assert o.filled_quantity == 10.0
    assert o.remaining == 0.0
    assert o.average_price == 101.0
    assert o.fees == 1.5


def test_partial_then_full_fill_averages_the_price_and_sums_the_fees() -> None:
    o = order()
    assert o.apply_fill(fill("f1", 4.0, price=100.0, fee=0.4))
    assert o.status is S.PARTIAL_FILL
    assert o.filled_quantity == 4.0
    assert o.remaining == 6.0
    assert o.average_price == 100.0
    assert o.apply_fill(fill("f2", 3.0, price=110.0, fee=0.33))
    assert o.status is S.PARTIAL_FILL
    assert o.apply_fill(fill("f3", 3.0, price=90.0, fee=0.27))
    assert o.status is S.FILLED
    assert o.filled_quantity == 10.0
    assert o.average_price == pytest.approx((4 * 100 + 3 * 110 + 3 * 90) / 10, rel=1e-15)
    assert o.fees == pytest.approx(0.4 + 0.33 + 0.27, rel=1e-15)
    assert o.fill_ids == {"f1", "f2", "f3"}


def test_fill_delivered_twice_changes_the_order_once() -> None:
    o = order()
    assert o.apply_fill(fill("f1", 4.0, fee=1.0))
    before = snapshot(o)
    assert o.apply_fill(fill("f1", 4.0, fee=1.0)) is False
    assert snapshot(o) == before
    assert o.filled_quantity == 4.0


def test_a_replayed_fill_after_the_order_filled_is_ignored_not_an_overfill() -> None:
    o = order()
    o.apply_fill(fill("f1", 10.0))
    before = snapshot(o)
    assert o.apply_fill(fill("f1", 10.0)) is False
    assert snapshot(o) == before


@pytest.mark.parametrize("first", [0.0, 4.0])
def test_an_overfill_is_refused_and_changes_nothing(first: float) -> None:
    o = order()
    if first:
        o.apply_fill(fill("f1", first))
    before = snapshot(o)
    with pytest.raises(OrderError, match="exceeds"):
        o.apply_fill(fill("f2", 10.0 - first + 0.5))
    assert snapshot(o) == before
    assert "f2" not in o.fill_ids


def test_a_new_fill_on_a_filled_order_is_refused() -> None:
    o = order()
    o.apply_fill(fill("f1", 10.0))
    with pytest.raises(OrderError):
        o.apply_fill(fill("f2", 1.0))
    assert o.status is S.FILLED
    assert o.filled_quantity == 10.0


def test_a_fill_of_another_order_is_refused() -> None:
    o = order()
    before = snapshot(o)
    with pytest.raises(OrderError, match="belongs to order o2"):
        o.apply_fill(fill("f1", 1.0, order_id="o2"))
    assert snapshot(o) == before


@pytest.mark.parametrize("qty", [0.0, -1.0])
def test_a_non_positive_fill_quantity_is_refused(qty: float) -> None:
    o = order()
    before = snapshot(o)
    with pytest.raises(OrderError, match="positive"):
        o.apply_fill(fill("f1", qty))
    assert snapshot(o) == before


@pytest.mark.parametrize("state", [S.CREATED, S.VALIDATED, S.CANCELLED, S.REJECTED, S.EXPIRED])
def test_a_fill_on_an_order_that_cannot_fill_raises_and_changes_nothing(state: OrderStatus) -> None:
    o = order(state)
    before = snapshot(o)
    with pytest.raises(InvalidTransition):
        o.apply_fill(fill("f1", 1.0))
    assert snapshot(o) == before


# ---- building an order ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "kwargs", "message"),
    [
        (OrderType.LIMIT, {}, "needs a limit price"),
        (OrderType.TAKE_PROFIT, {}, "needs a limit price"),
        (OrderType.STOP, {}, "needs a stop price"),
        (OrderType.STOP_LIMIT, {"stop_price": 99.0}, "needs a limit price"),
        (OrderType.STOP_LIMIT, {"limit_price": 99.0}, "needs a stop price"),
        (OrderType.TRAILING_STOP, {}, "needs a trail"),
    ],
)
def test_an_order_missing_its_prices_is_refused(type_: OrderType, kwargs: dict, message: str) -> None:
    with pytest.raises(OrderError, match=message):
        Order("o1", "X", OrderSide.SELL, type_, 1.0, **kwargs)


def test_a_negative_quantity_is_refused() -> None:
    with pytest.raises(OrderError, match="negative"):
        Order("o1", "X", OrderSide.BUY, OrderType.MARKET, -1.0)


@pytest.mark.parametrize(
    ("type_", "kwargs"),
    [
        (OrderType.MARKET, {}),
        (OrderType.LIMIT, {"limit_price": 99.0}),
        (OrderType.TAKE_PROFIT, {"limit_price": 110.0}),
        (OrderType.STOP, {"stop_price": 95.0}),
        (OrderType.STOP_LIMIT, {"stop_price": 95.0, "limit_price": 94.0}),
        (OrderType.TRAILING_STOP, {"trail": 0.02}),
        (OrderType.TRAILING_STOP, {"stop_price": 95.0}),
    ],
)
def test_a_complete_order_starts_created_and_empty(type_: OrderType, kwargs: dict) -> None:
    o = Order("o1", "X", OrderSide.SELL, type_, 3.0, **kwargs)
    assert o.status is S.CREATED
    assert o.filled_quantity == 0.0
    assert o.fees == 0.0
    assert o.average_price is None
    assert o.remaining == 3.0
    assert o.time_in_force is TimeInForce.GTC
    assert not o.triggered
    assert o.fill_ids == set()


def test_a_zero_quantity_is_allowed_for_orders_sized_at_the_fill() -> None:
    o = Order("o1", "X", OrderSide.BUY, OrderType.MARKET, 0.0, equity_fraction=0.5)
    assert o.remaining == 0.0


# ---- Decimal orders ---------------------------------------------------------------------------


def dfill(fill_id: str, quantity: str, price: str, fee: str = "0") -> Fill[Decimal]:
    return Fill(fill_id, "d1", "BTC", OrderSide.SELL, Decimal(quantity), Decimal(price), Decimal(fee))


def dorder(quantity: str = "0.3") -> Order[Decimal]:
    o: Order[Decimal] = Order(
        "d1", "BTC", OrderSide.SELL, OrderType.LIMIT, Decimal(quantity), limit_price=Decimal("42000.10")
    )
    o.transition(S.VALIDATED)
    o.transition(S.SUBMITTED)
    return o


def test_decimal_orders_fill_exactly() -> None:
    o = dorder("0.3")
    assert o.filled_quantity == Decimal(0)
    assert isinstance(o.filled_quantity, Decimal)
    assert isinstance(o.fees, Decimal)
    o.apply_fill(dfill("f1", "0.1", "42000.10", "0.01"))
    o.apply_fill(dfill("f2", "0.1", "42000.30", "0.02"))
    assert o.status is S.PARTIAL_FILL
    o.apply_fill(dfill("f3", "0.1", "42000.50", "0.03"))
    assert o.status is S.FILLED  # 0.1 + 0.1 + 0.1 == 0.3 exactly: no float dust left over
    assert o.remaining == Decimal(0)
    assert o.filled_quantity == Decimal("0.3")
    assert o.average_price == Decimal("42000.30")
    assert o.fees == Decimal("0.06")


def test_decimal_overfill_by_the_smallest_step_is_refused() -> None:
    o = dorder("0.3")
    o.apply_fill(dfill("f1", "0.2", "42000"))
    with pytest.raises(OrderError, match="exceeds"):
        o.apply_fill(dfill("f2", "0.10000001", "42000"))
    assert o.filled_quantity == Decimal("0.2")


@pytest.mark.parametrize(
    "bad",
    [
        Fill("f1", "d1", "BTC", OrderSide.SELL, 0.1, Decimal("42000"), Decimal("0")),
        Fill("f1", "d1", "BTC", OrderSide.SELL, Decimal("0.1"), Decimal("42000"), 0.5),
        Fill("f1", "d1", "BTC", OrderSide.SELL, Decimal("0.1"), 42000.0, Decimal("0")),
    ],
    ids=["float_quantity", "float_fee", "float_price"],
)
def test_a_float_fill_on_a_decimal_order_raises_type_error_and_changes_nothing(bad: Fill) -> None:
    o = dorder()
    before = snapshot(o)
    with pytest.raises(TypeError):
        o.apply_fill(bad)
    assert snapshot(o) == before


def test_a_float_price_on_a_partly_filled_decimal_order_raises_type_error() -> None:
    o = dorder()
    o.apply_fill(dfill("f1", "0.1", "42000"))
    before = snapshot(o)
    with pytest.raises(TypeError):
        o.apply_fill(Fill("f2", "d1", "BTC", OrderSide.SELL, Decimal("0.1"), 42000.5, Decimal("0")))
    assert snapshot(o) == before


def test_a_decimal_fill_on_a_float_order_raises_type_error_and_changes_nothing() -> None:
    o = order(quantity=1.0)
    before = snapshot(o)
    with pytest.raises(TypeError):
        o.apply_fill(Fill("f1", "o1", "X", OrderSide.BUY, Decimal("0.5"), Decimal("100"), Decimal("0")))
    assert snapshot(o) == before


# ---- a random walk through the machine (RELIABILITY: a RuleBasedStateMachine with invariants) ---


class OrderMachine(RuleBasedStateMachine):
    """Random events against one Decimal order: transitions to any state, fills (new or replayed,
    some too large); the order never leaves the spec and its fill totals stay consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.order: Order[Decimal] = Order("o1", "X", OrderSide.BUY, OrderType.MARKET, Decimal(10))
        self.applied: dict[str, Decimal] = {}
        self.sent: list[Fill[Decimal]] = []
        self.ids = itertools.count()

    @rule(state=st.sampled_from(list(S)))
    def transition(self, state: OrderStatus) -> None:
        o = self.order
        before = snapshot(o)
        allowed = state in SPEC.get(o.status, set())
        try:
            o.transition(state)
        except InvalidTransition:
            assert not allowed
            assert snapshot(o) == before
        else:
            assert allowed
            assert o.status is state

    @rule(tenths=st.integers(-5, 60))
    def new_fill(self, tenths: int) -> None:
        f = Fill(
            f"f{next(self.ids)}", "o1", "X", OrderSide.BUY, Decimal(tenths) / 10, Decimal(100), Decimal(0)
        )
        self.sent.append(f)
        self._apply(f)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replayed_fill(self, data: st.DataObject) -> None:
        self._apply(data.draw(st.sampled_from(self.sent)))

    def _apply(self, f: Fill[Decimal]) -> None:
        o = self.order
        before = snapshot(o)
        try:
            changed = o.apply_fill(f)
        except OrderError:
            assert snapshot(o) == before
            return
        if changed:
            assert f.fill_id not in self.applied
            self.applied[f.fill_id] = f.quantity
        else:
            assert f.fill_id in self.applied
            assert snapshot(o) == before

    @invariant()
    def filled_is_the_sum_of_unique_fills(self) -> None:
        o = self.order
        assert o.filled_quantity == sum(self.applied.values(), Decimal(0))
        assert Decimal(0) <= o.filled_quantity <= o.quantity
        assert o.fill_ids == set(self.applied)

    @invariant()
    def fully_filled_means_filled(self) -> None:
        o = self.order
        if o.filled_quantity == o.quantity:
            assert o.status is S.FILLED


TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
