"""NatsBus on a real NATS JetStream server: two connections, groups, dedup, retries, dead
letters, durable resume and redelivery after a consumer process crashes.

Each test gets its own stream names and subject prefixes (deleted afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from algotrendy.adapters.bus.nats import NatsBus, durable_name
from algotrendy.core.errors import TemporaryError
from algotrendy.core.events import Envelope
from tests.support import require_service

nats = pytest.importorskip("nats")

AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def env(event_type: str = "user.registered", **data: object) -> Envelope:
    return Envelope(event_id=uuid.uuid4(), event_type=event_type, timestamp=AT, data=data, source="test")


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class Env:
    url: str
    stream: str
    prefix: str
    dlq_prefix: str
    buses: list[NatsBus] = field(default_factory=list)

    @property
    def options(self) -> dict[str, Any]:
        return {"stream": self.stream, "subject_prefix": self.prefix, "dlq_prefix": self.dlq_prefix}

    async def bus(self, **overrides: Any) -> NatsBus:
        bus = NatsBus(self.url, **{**self.options, **overrides})
        self.buses.append(bus)
        await bus.start()
        return bus

    async def js(self) -> Any:
        nc = await nats.connect(self.url)
        return nc, nc.jetstream()


@pytest.fixture
async def ns() -> AsyncIterator[Env]:
    url = require_service("nats")
    tag = uuid.uuid4().hex[:12]
    e = Env(url=url, stream=f"TEST_{tag}", prefix=f"t{tag}.events", dlq_prefix=f"t{tag}.dlq")
    yield e
    for bus in e.buses:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bus.close(), 10)
    nc, js = await e.js()
    for stream in (e.stream, f"{e.stream}_DLQ"):
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    await nc.close()


def recorder(sink: list[Envelope], fail_times: int = 0) -> Callable[[Envelope], Awaitable[None]]:
    calls = Counter[uuid.UUID]()

    async def handle(e: Envelope) -> None:
        calls[e.event_id] += 1
        if calls[e.event_id] <= fail_times:
            raise RuntimeError("transient")
        sink.append(e)

    return handle


async def test_publish_and_consume_across_two_connections(ns: Env) -> None:
    producer = await ns.bus(name="producer")
    consumer = await ns.bus(name="consumer")
    got: list[Envelope] = []
    await consumer.subscribe("user.*", group="notifications", handler=recorder(got))
    e = env(user_id="42")
    await asyncio.wait_for(producer.publish(e), 10)
    await wait_until(lambda: len(got) == 1)
    assert got == [e]
    await producer.ping()
    await consumer.ping()


async def test_every_group_gets_it_and_members_of_a_group_share(ns: Env) -> None:
    producer = await ns.bus()
    a: list[Envelope] = []
    b: list[Envelope] = []
    await (await ns.bus()).subscribe("trading.>", group="audit", handler=recorder(a))
    await (await ns.bus()).subscribe("trading.>", group="audit2", handler=recorder(b))

    shared: dict[str, list[uuid.UUID]] = {"one": [], "two": []}

    def member(name: str) -> Callable[[Envelope], Awaitable[None]]:
        async def handle(e: Envelope) -> None:
            await asyncio.sleep(0.05)
            shared[name].append(e.event_id)

        return handle

    await (await ns.bus()).subscribe("trading.>", group="portfolio", handler=member("one"))
    await (await ns.bus()).subscribe("trading.>", group="portfolio", handler=member("two"))

    events = [env("trading.order.filled", i=i) for i in range(20)]
    for e in events:
        await asyncio.wait_for(producer.publish(e), 10)
    await wait_until(lambda: len(a) == 20 and len(b) == 20, 20)
    await wait_until(lambda: len(shared["one"]) + len(shared["two"]) == 20, 20)
    await asyncio.sleep(0.3)  # nothing more arrives
    ids = sorted(e.event_id for e in events)
    assert sorted(x.event_id for x in a) == ids
    assert sorted(x.event_id for x in b) == ids
    assert sorted(shared["one"] + shared["two"]) == ids
    assert shared["one"] and shared["two"]


async def test_duplicate_publish_is_deduplicated(ns: Env) -> None:
    producer = await ns.bus()
    got: list[Envelope] = []
    await (await ns.bus()).subscribe("user.registered", group="g", handler=recorder(got))
    e = env()
    await producer.publish(e)
    await producer.publish(e)
    await wait_until(lambda: len(got) == 1)
    await asyncio.sleep(0.5)
    assert got == [e]
    nc, js = await ns.js()
    info = await js.stream_info(ns.stream)
    await nc.close()
    assert info.state.messages == 1


async def test_nak_then_redelivery_then_success(ns: Env) -> None:
    producer = await ns.bus()
    consumer = await ns.bus(backoff_base=0.05, backoff_max=0.2)
    got: list[Envelope] = []
    calls: list[float] = []

    inner = recorder(got, fail_times=2)

    async def handle(e: Envelope) -> None:
        calls.append(asyncio.get_running_loop().time())
        await inner(e)

    await consumer.subscribe("user.registered", group="g", handler=handle)
    e = env()
    await producer.publish(e)
    await wait_until(lambda: len(got) == 1)
    await asyncio.sleep(0.3)
    assert got == [e]
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.09  # second nak asked for 0.1 s
    nc, js = await ns.js()
    info = await js.consumer_info(ns.stream, durable_name("g", "user.registered"))
    await nc.close()
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_dead_letter_after_max_deliver(ns: Env) -> None:
    producer = await ns.bus()
    consumer = await ns.bus(max_deliver=3, backoff_base=0.02, backoff_max=0.05)
    calls: list[uuid.UUID] = []

    async def broken(e: Envelope) -> None:
        calls.append(e.event_id)
        raise ValueError("cannot handle")

    await consumer.subscribe("user.*", group="mailer", handler=broken)
    e = env(email="someone@example.com")
    await producer.publish(e)

    nc, js = await ns.js()
    try:
        dlq = f"{ns.stream}_DLQ"

        async def dlq_count() -> int:
            return int((await js.stream_info(dlq)).state.messages)

        for _ in range(500):
            if await dlq_count() >= 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # no further deliveries once terminated
        assert calls == [e.event_id] * 3
        assert await dlq_count() == 1
        msg = await js.get_msg(dlq, 1)
        assert msg.subject == f"{ns.dlq_prefix}.mailer"
        assert Envelope.from_json(msg.data) == e
        headers = msg.headers or {}
        assert headers["Algotrendy-Error-Type"] == "ValueError"
        assert "cannot handle" in headers["Algotrendy-Error"]
        assert headers["Algotrendy-Group"] == "mailer"
        assert headers["Algotrendy-Num-Delivered"] == "3"
        info = await js.consumer_info(ns.stream, durable_name("mailer", "user.*"))
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await nc.close()


async def test_malformed_message_is_dead_lettered_and_the_loop_survives(ns: Env) -> None:
    consumer = await ns.bus()
    got: list[Envelope] = []
    await consumer.subscribe("user.*", group="g", handler=recorder(got))
    nc, js = await ns.js()
    try:
        await js.publish(f"{ns.prefix}.user.registered", b"{not json")
        await js.publish(f"{ns.prefix}.user.registered", b'{"event_id": "x"}')
        good = env()
        await (await ns.bus()).publish(good)
        await wait_until(lambda: len(got) == 1)
        assert got == [good]
        dlq = f"{ns.stream}_DLQ"
        for _ in range(250):
            if (await js.stream_info(dlq)).state.messages == 2:
                break
            await asyncio.sleep(0.02)
        first = await js.get_msg(dlq, 1)
        assert first.data == b"{not json"
        assert (first.headers or {})["Algotrendy-Error-Type"] == "ValidationError"
    finally:
        await nc.close()


async def test_stopped_group_resumes_where_it_left(ns: Env) -> None:
    producer = await ns.bus()
    consumer = await ns.bus()
    got: list[Envelope] = []
    sub = await consumer.subscribe("user.*", group="g", handler=recorder(got))
    first = env()
    await producer.publish(first)
    await wait_until(lambda: len(got) == 1)
    await sub.stop()
    missed = env()
    await producer.publish(missed)
    await asyncio.sleep(0.2)
    assert got == [first]
    await (await ns.bus()).subscribe("user.*", group="g", handler=recorder(got))
    await wait_until(lambda: len(got) == 2)
    assert got == [first, missed]


CRASHING_CONSUMER = textwrap.dedent(
    """
    import asyncio, os, sys
    from algotrendy.adapters.bus.nats import NatsBus

    url, stream, prefix, dlq = sys.argv[1:5]

    async def main():
        bus = NatsBus(url, stream=stream, subject_prefix=prefix, dlq_prefix=dlq, ack_wait=1.0)
        await bus.start()

        async def handler(envelope):
            print(envelope.event_id, flush=True)
            os._exit(1)  # crash mid-handling: no ack, no nak

        await bus.subscribe("trading.order.*", group="risk", handler=handler)
        print("ready", flush=True)
        await asyncio.sleep(30)

    asyncio.run(main())
    """
)


async def test_redelivery_after_a_consumer_process_crash(ns: Env) -> None:
    producer = await ns.bus()
    e = env("trading.order.submitted", order_id="o-1")
    await producer.publish(e)

    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_CONSUMER,
        ns.url,
        ns.stream,
        ns.prefix,
        ns.dlq_prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env=child_env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 1, err.decode()
    assert str(e.event_id) in out.decode().split()

    got: list[Envelope] = []
    survivor = await ns.bus(ack_wait=1.0)
    await survivor.subscribe("trading.order.*", group="risk", handler=recorder(got))
    await wait_until(lambda: len(got) == 1, 15)
    assert got == [e]
    nc, js = await ns.js()
    info = await js.consumer_info(ns.stream, durable_name("risk", "trading.order.*"))
    await nc.close()
    assert info.delivered.consumer_seq == 2  # the crashed delivery, then ours
    assert info.num_ack_pending == 0


async def test_not_started_and_closed_bus_refuse(ns: Env) -> None:
    bus = NatsBus(ns.url, **ns.options)
    with pytest.raises(TemporaryError):
        await bus.publish(env())
    with pytest.raises(TemporaryError):
        await bus.ping()
    await bus.start()
    await bus.ping()
    await bus.close()
    with pytest.raises(TemporaryError):
        await bus.ping()
    with pytest.raises(TemporaryError):
        await bus.publish(env())


async def test_unreachable_server_is_a_temporary_error() -> None:
    bus = NatsBus("nats://127.0.0.1:1", connect_timeout=1.0)
    with pytest.raises(TemporaryError):
        await bus.start()
