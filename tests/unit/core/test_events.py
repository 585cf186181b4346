from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from algotrendy.core.events import Envelope, Event, topic_matches


class Thing(Event):
    topic = "demo.thing_happened"
    n: int


def test_envelope_has_the_spec_fields_and_round_trips() -> None:
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    env = Envelope.of(Thing(n=3), source="demo", at=at)
    data = env.model_dump(mode="json")
    assert set(data) == {"event_id", "event_type", "timestamp", "data", "source"}
    assert data["event_type"] == "demo.thing_happened" and data["data"] == {"n": 3}
    assert Envelope.from_json(env.to_json()) == env


def test_envelope_refuses_naive_time_and_missing_topic() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Envelope.of(Thing(n=1), source="demo", at=datetime(2024, 1, 1))

    class NoTopic(Event):
        pass

    with pytest.raises(ValueError, match="no topic"):
        Envelope.of(NoTopic(), source="demo", at=datetime.now(UTC))


def test_event_type_must_be_dotted_lowercase() -> None:
    with pytest.raises(ValidationError):
        Envelope(event_id=uuid.uuid4(), event_type="NoDots", timestamp=datetime.now(UTC), data={}, source="x")


def test_events_are_immutable_and_strict() -> None:
    with pytest.raises(ValidationError):
        Thing(n=1, extra=2)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("user.registered", "user.registered", True),
        ("user.*", "user.registered", True),
        ("user.*", "user.session.revoked", False),
        ("user.>", "user.session.revoked", True),
        ("trading.>", "trading", False),
        ("*.registered", "user.registered", True),
        ("user.registered", "user.registered.extra", False),
    ],
)
def test_topic_matching(pattern: str, event_type: str, expected: bool) -> None:
    assert topic_matches(pattern, event_type) is expected
