"""Typed identifiers. Ids are UUIDs; ``NewType`` keeps a user id from being passed as an order id."""

from __future__ import annotations

import uuid
from typing import NewType

UserId = NewType("UserId", uuid.UUID)
SessionId = NewType("SessionId", uuid.UUID)
JobId = NewType("JobId", uuid.UUID)
EventId = NewType("EventId", uuid.UUID)


def new_id() -> uuid.UUID:
    """A fresh random (version 4) UUID."""
    return uuid.uuid4()
