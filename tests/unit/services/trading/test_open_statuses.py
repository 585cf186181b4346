"""The trading store's open statuses are exactly the state machine's open ones."""

from algotrendy.engine.orders import OrderStatus
from algotrendy.services.trading.store import OPEN_STATUSES


def test_open_statuses_are_the_state_machines() -> None:
    assert set(OPEN_STATUSES) == {s.value for s in OrderStatus if s.is_open}
