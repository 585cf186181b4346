"""Venue answers are untrusted input (RELIABILITY.md API10): numbers are checked here, once, for
every broker adapter. A value that is missing, not a number, NaN/infinite or negative raises
``VenueDataError``, so the caller quarantines the message instead of applying it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from algotrendy.core.venue import VenueDataError


def dec(value: Any, what: str, *, optional: bool = False, positive: bool = False) -> Decimal | None:
    """``value`` as a finite, non-negative ``Decimal`` (``positive``: strictly above zero).

    ``None`` or ``""`` is allowed only when ``optional``; floats go through ``repr`` so that
    ``0.1`` stays ``0.1``."""
    if value is None or value == "":
        if optional:
            return None
        raise VenueDataError(f"venue answer lacks {what}")
    if isinstance(value, bool):
        raise VenueDataError(f"venue answer has a boolean {what}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise VenueDataError(f"venue answer has a non-numeric {what}: {value!r}") from exc
    if not number.is_finite():
        raise VenueDataError(f"venue answer has a non-finite {what}: {value!r}")
    if number < 0 or (positive and number == 0):
        raise VenueDataError(
            f"venue answer has {'a non-positive' if positive else 'a negative'} {what}: {value!r}"
        )
    return number


def req(value: Any, what: str, *, positive: bool = False) -> Decimal:
    """Like ``dec`` for a field that must be present."""
    number = dec(value, what, positive=positive)
    assert number is not None  # dec raises for a missing required value
    return number
