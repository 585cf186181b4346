"""InMemoryBus: groups, work sharing, retries, dead letters, publish semantics, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from algotrendy.adapters.bus.memory import InMemoryBus
from algotrendy.core.errors import TemporaryError
from algotrendy.core.events import Envelope

AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def env(event_type: str = "user.registered", **data: object) -> Envelope:
    return Envelope(event_id=uuid.uuid4(), event_type=event_type, timestamp=AT, data=data, source="test")


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    b = InMemoryBus(backoff_base=0.001, backoff_max=0.01, stop_timeout=2.0)
    await b.start()
    yield b
    await b.close()


async def test_every_group_gets_each_event_once(bus: InMemoryBus) -> None:
    seen: dict[str, list[uuid.UUID]] = {"a": [], "b": []}

    def recorder(group: str):
        async def handle(e: Envelope) -> None:
            seen[group].append(e.event_id)

        return handle

    await bus.subscribe("user.registered", group="a", handler=recorder("a"))
    await bus.subscribe("user.registered", group="b", handler=recorder("b"))
    events = [env() for _ in range(5)]
    for e in events:
        await bus.publish(e)
    ids = [e.event_id for e in events]
    assert seen == {"a": ids, "b": ids}


async def test_handlers_in_one_group_share_the_work(bus: InMemoryBus) -> None:
    counts: Counter[str] = Counter()
    ids: list[uuid.UUID] = []

    def worker(name: str):
        async def handle(e: Envelope) -> None:
            await asyncio.sleep(0.005)
            counts[name] += 1
            ids.append(e.event_id)

        return handle

    await bus.subscribe("trading.>", group="g", handler=worker("one"))
    await bus.subscribe("trading.>", group="g", handler=worker("two"))
    events = [env("trading.order.filled") for _ in range(20)]
    await asyncio.wait_for(asyncio.gather(*(bus.publish(e) for e in events)), 5)
    assert sorted(ids) == sorted(e.event_id for e in events)
    assert counts["one"] > 0 and counts["two"] > 0
    assert counts["one"] + counts["two"] == 20


async def test_retry_with_backoff_then_success(bus: InMemoryBus) -> None:
    attempts = 0

    async def flaky(e: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("not yet")

    await bus.subscribe("user.registered", group="g", handler=flaky)
    await asyncio.wait_for(bus.publish(env()), 5)
    assert attempts == 3
    assert bus.dead_letters == []


def test_backoff_is_exponential_and_capped() -> None:
    b = InMemoryBus(backoff_base=0.05, backoff_max=0.3)
    assert [b.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.05, 0.1, 0.2, 0.3, 0.3]


async def test_dead_letter_after_max_attempts() -> None:
    called: list[tuple[str, uuid.UUID, str]] = []

    async def on_dead(group: str, e: Envelope, exc: BaseException) -> None:
        called.append((group, e.event_id, type(exc).__name__))

    bus = InMemoryBus(max_attempts=4, backoff_base=0.001, backoff_max=0.002, on_dead_letter=on_dead)
    await bus.start()
    attempts = 0

    async def broken(e: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("boom")

    await bus.subscribe("user.*", group="g", handler=broken)
    e = env(email="someone@example.com")
    await asyncio.wait_for(bus.publish(e), 5)  # returns: dead-lettered counts as handled
    assert attempts == 4
    assert len(bus.dead_letters) == 1
    group, dead, error = bus.dead_letters[0]
    assert (group, dead, error) == ("g", e, repr(ValueError("boom")))
    assert called == [("g", e.event_id, "ValueError")]
    await bus.close()


async def test_dead_letter_callback_failure_does_not_stop_the_worker() -> None:
    async def on_dead(group: str, e: Envelope, exc: BaseException) -> None:
        raise RuntimeError("callback down")

    bus = InMemoryBus(max_attempts=1, on_dead_letter=on_dead)
    seen: list[uuid.UUID] = []

    async def handler(e: Envelope) -> None:
        if e.data.get("bad"):
            raise ValueError("bad")
        seen.append(e.event_id)

    await bus.subscribe("user.registered", group="g", handler=handler)
    await asyncio.wait_for(bus.publish(env(bad=True)), 5)
    good = env()
    await asyncio.wait_for(bus.publish(good), 5)
    assert seen == [good.event_id]
    assert len(bus.dead_letters) == 1
    await bus.close()


async def test_publish_waits_until_handled(bus: InMemoryBus) -> None:
    release = asyncio.Event()
    done: list[uuid.UUID] = []

    async def slow(e: Envelope) -> None:
        await release.wait()
        done.append(e.event_id)

    await bus.subscribe("user.registered", group="g", handler=slow)
    e = env()
    publishing = asyncio.create_task(bus.publish(e))
    await asyncio.sleep(0.05)
    assert not publishing.done()
    release.set()
    await asyncio.wait_for(publishing, 5)
    assert done == [e.event_id]


async def test_publish_without_subscribers_returns(bus: InMemoryBus) -> None:
    await asyncio.wait_for(bus.publish(env()), 1)


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("user.*", "user.registered", "user.password.changed"),
        ("trading.>", "trading.order.filled", "tradingx.order"),
        ("trading.*.filled", "trading.order.filled", "trading.order.cancelled"),
        ("user.registered", "user.registered", "user.registered.twice"),
    ],
)
async def test_wildcard_patterns(bus: InMemoryBus, pattern: str, matching: str, other: str) -> None:
    got: list[str] = []

    async def handle(e: Envelope) -> None:
        got.append(e.event_type)

    await bus.subscribe(pattern, group="g", handler=handle)
    await asyncio.wait_for(bus.publish(env(matching)), 5)
    await asyncio.wait_for(bus.publish(env(other)), 5)
    assert got == [matching]


async def test_invalid_patterns_are_refused(bus: InMemoryBus) -> None:
    async def handle(e: Envelope) -> None:
        return None

    for bad in ("", "user..x", "trading.>.x"):
        with pytest.raises(ValueError):
            await bus.subscribe(bad, group="g", handler=handle)
    with pytest.raises(ValueError):
        await bus.subscribe("user.*", group="", handler=handle)


async def test_close_releases_waiting_publishers() -> None:
    bus = InMemoryBus(stop_timeout=0.2)
    await bus.start()
    started = asyncio.Event()

    async def stuck(e: Envelope) -> None:
        started.set()
        await asyncio.sleep(3600)

    await bus.subscribe("user.registered", group="g", handler=stuck)
    in_flight = asyncio.create_task(bus.publish(env()))
    await asyncio.wait_for(started.wait(), 5)
    queued = asyncio.create_task(bus.publish(env()))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(bus.close(), 5)
    for task in (in_flight, queued):
        with pytest.raises(TemporaryError):
            await asyncio.wait_for(task, 5)
    with pytest.raises(TemporaryError):
        await bus.publish(env())
    with pytest.raises(TemporaryError):
        await bus.ping()


async def test_close_lets_in_flight_handlers_finish() -> None:
    bus = InMemoryBus(stop_timeout=5)
    await bus.start()
    started = asyncio.Event()
    finished: list[uuid.UUID] = []

    async def slowish(e: Envelope) -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append(e.event_id)

    await bus.subscribe("user.registered", group="g", handler=slowish)
    e = env()
    publishing = asyncio.create_task(bus.publish(e))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(bus.close(), 5)
    await asyncio.wait_for(publishing, 1)
    assert finished == [e.event_id]


async def test_stop_removes_the_subscription(bus: InMemoryBus) -> None:
    got: list[str] = []

    async def a(e: Envelope) -> None:
        got.append("a")

    async def b(e: Envelope) -> None:
        got.append("b")

    sub_a = await bus.subscribe("user.registered", group="a", handler=a)
    await bus.subscribe("user.registered", group="b", handler=b)
    await bus.publish(env())
    await sub_a.stop()
    await sub_a.stop()  # idempotent
    await asyncio.wait_for(bus.publish(env()), 5)
    assert got.count("a") == 1 and got.count("b") == 2


async def test_stopping_one_handler_of_a_group_hands_its_retry_to_the_other() -> None:
    bus = InMemoryBus(backoff_base=0.2, backoff_max=0.2)
    await bus.start()
    failed = asyncio.Event()
    handled_by: list[str] = []

    async def failing(e: Envelope) -> None:
        failed.set()
        raise RuntimeError("down")

    async def healthy(e: Envelope) -> None:
        handled_by.append("healthy")

    sub_failing = await bus.subscribe("user.registered", group="g", handler=failing)
    publishing = asyncio.create_task(bus.publish(env()))
    await asyncio.wait_for(failed.wait(), 5)  # now sleeping in backoff
    await bus.subscribe("user.registered", group="g", handler=healthy)
    await asyncio.wait_for(sub_failing.stop(), 5)
    await asyncio.wait_for(publishing, 5)
    assert handled_by == ["healthy"]
    assert bus.dead_letters == []
    await bus.close()


async def test_handler_publishing_to_its_own_group_does_not_deadlock(bus: InMemoryBus) -> None:
    got: list[int] = []

    async def chain(e: Envelope) -> None:
        n = int(e.data["n"])
        got.append(n)
        if n < 3:
            await bus.publish(env("user.registered", n=n + 1))

    await bus.subscribe("user.registered", group="g", handler=chain)
    await asyncio.wait_for(bus.publish(env(n=0)), 5)
    for _ in range(100):
        if len(got) == 4:
            break
        await asyncio.sleep(0.01)
    assert got == [0, 1, 2, 3]


async def test_many_concurrent_events_no_loss_no_duplicates() -> None:
    bus = InMemoryBus(workers=4)
    await bus.start()
    seen: dict[str, Counter[uuid.UUID]] = {"x": Counter(), "y": Counter()}

    def recorder(group: str):
        async def handle(e: Envelope) -> None:
            await asyncio.sleep(0)
            seen[group][e.event_id] += 1

        return handle

    for _ in range(3):
        await bus.subscribe("trading.>", group="x", handler=recorder("x"))
    await bus.subscribe("trading.order.*", group="y", handler=recorder("y"))
    events = [env("trading.order.filled", i=i) for i in range(2000)]
    await asyncio.wait_for(asyncio.gather(*(bus.publish(e) for e in events)), 30)
    expected = Counter(e.event_id for e in events)
    assert seen["x"] == expected
    assert seen["y"] == expected
    await bus.close()


async def test_ping_reflects_lifecycle() -> None:
    bus = InMemoryBus()
    with pytest.raises(TemporaryError):
        await bus.ping()
    await bus.start()
    await bus.ping()
    await bus.close()
    with pytest.raises(TemporaryError):
        await bus.ping()
