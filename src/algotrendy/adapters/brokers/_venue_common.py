"""What the live venue adapters (ccxt, Alpaca) share: a bounded memory of ids and the check of
a venue number that may be negative."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any, Generic, TypeVar

from ._validate import dec, req

V = TypeVar("V")

REMEMBERED = 10_000
"""Entries an ``Lru`` keeps by default (ids of orders and trades), oldest forgotten first."""


class Lru(OrderedDict[str, V], Generic[V]):
    """A dict that forgets its least recently put entries beyond ``limit``."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


def signed(value: Any, what: str, *, missing_is_zero: bool = False) -> Decimal:
    """A finite number that may be negative (a fee rebate, a short position, borrowed cash).
    Missing raises ``VenueDataError``, or is zero with ``missing_is_zero``."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and value < 0:
        return -req(-value, what)
    if isinstance(value, str) and value.startswith("-"):
        return -req(value[1:], what)
    if missing_is_zero:
        number = dec(value, what, optional=True)
        return Decimal(0) if number is None else number
    return req(value, what)
