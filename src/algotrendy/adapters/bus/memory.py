"""In-process event bus: asyncio queues and worker tasks (the all-in-one default).

Each ``(pattern, group)`` pair has one queue; every handler subscribed with that pair adds
``workers`` tasks that take from it, so handlers of one group share the work while different
groups each get every matching event. ``publish`` returns once every matching group has handled
the event or dead-lettered it, which is this bus's "durably accepted" (it keeps nothing across a
crash; the outbox is what survives one).

A failing handler is retried with exponential backoff up to ``max_attempts``; then the event is
dead-lettered: an error log line, an entry in ``dead_letters`` and the ``on_dead_letter``
callback. A publisher is released with ``TemporaryError`` when its event can no longer be handled
(the bus closed, or the group's last handler stopped first), so the outbox will retry it.

A handler that publishes an event its own group (or a group up its call chain) subscribes to does
not wait for that group, which would deadlock; the event is still queued and handled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import NamedTuple

import structlog

from algotrendy.core.errors import TemporaryError
from algotrendy.core.events import Envelope, Handler, topic_matches
from algotrendy.db.waits import wait_event

log = structlog.get_logger(__name__)

DeadLetterCallback = Callable[[str, Envelope, BaseException], Awaitable[None]]
"""``on_dead_letter(group, envelope, error)``."""


class DeadLetter(NamedTuple):
    group: str
    envelope: Envelope
    error: str
    """``repr`` of the last exception."""


class _Delivery:
    __slots__ = ("attempts", "chain", "done", "envelope")

    def __init__(self, envelope: Envelope, done: asyncio.Future[None], chain: frozenset[_Group]) -> None:
        self.envelope = envelope
        self.done = done
        self.chain = chain
        self.attempts = 0

    def settle(self, error: BaseException | None = None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


class _Worker:
    __slots__ = ("busy", "handler", "stopping", "task")

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.busy = False
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class _Group:
    """One ``(pattern, group)`` queue and the workers that drain it (hashed by identity)."""

    def __init__(self, pattern: str, name: str) -> None:
        self.pattern = pattern
        self.name = name
        self.queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self.workers: list[_Worker] = []

    def fail_pending(self, reason: str) -> None:
        while not self.queue.empty():
            self.queue.get_nowait().settle(TemporaryError(reason))


# The groups whose handlers are up the current call chain (see module docstring).
_CHAIN: ContextVar[frozenset[_Group]] = ContextVar("algotrendy_bus_chain", default=frozenset())


class _MemorySubscription:
    def __init__(self, bus: InMemoryBus, group: _Group, workers: list[_Worker]) -> None:
        self._bus = bus
        self._group = group
        self._workers = workers

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        if workers:
            await self._bus._remove(self._group, workers)


def validate_pattern(pattern: str) -> None:
    tokens = pattern.split(".")
    if any(not tok for tok in tokens) or ">" in tokens[:-1]:
        raise ValueError(f"invalid topic pattern {pattern!r}")


class InMemoryBus:
    """``core.events.Bus`` on asyncio queues; see the module docstring for the semantics."""

    def __init__(
        self,
        *,
        max_attempts: int = 8,
        backoff_base: float = 0.05,
        backoff_max: float = 5.0,
        workers: int = 1,
        stop_timeout: float = 10.0,
        on_dead_letter: DeadLetterCallback | None = None,
    ) -> None:
        if max_attempts < 1 or workers < 1:
            raise ValueError("max_attempts and workers must be at least 1")
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._workers_per_handler = workers
        self._stop_timeout = stop_timeout
        self._on_dead_letter = on_dead_letter
        self._groups: dict[tuple[str, str], _Group] = {}
        self._started = False
        self._closed = False
        self.dead_letters: list[DeadLetter] = []

    async def start(self) -> None:
        self._started = True
        self._closed = False

    async def ping(self) -> None:
        if self._closed or not self._started:
            raise TemporaryError("in-process bus is not running")

    async def close(self) -> None:
        """Stop every worker (in-flight handler calls get ``stop_timeout`` to finish) and
        release waiting publishers with ``TemporaryError``."""
        self._closed = True
        self._started = False
        groups = list(self._groups.values())
        self._groups.clear()
        await asyncio.gather(*(self._shutdown(g, list(g.workers)) for g in groups))

    async def subscribe(self, pattern: str, *, group: str, handler: Handler) -> _MemorySubscription:
        if self._closed:
            raise TemporaryError("in-process bus is closed")
        validate_pattern(pattern)
        if not group:
            raise ValueError("group must not be empty")
        grp = self._groups.get((pattern, group))
        if grp is None:
            grp = self._groups[(pattern, group)] = _Group(pattern, group)
        workers = [_Worker(handler) for _ in range(self._workers_per_handler)]
        for worker in workers:
            worker.task = asyncio.create_task(self._run(grp, worker), name=f"bus:{group}:{pattern}")
            grp.workers.append(worker)
        return _MemorySubscription(self, grp, workers)

    async def publish(self, envelope: Envelope) -> None:
        if self._closed:
            raise TemporaryError("in-process bus is closed")
        loop = asyncio.get_running_loop()
        chain = _CHAIN.get()
        waits: list[asyncio.Future[None]] = []
        for grp in list(self._groups.values()):
            if topic_matches(grp.pattern, envelope.event_type):
                delivery = _Delivery(envelope, loop.create_future(), chain)
                delivery.done.add_done_callback(_consume_result)
                grp.queue.put_nowait(delivery)
                # Waiting on a group up our own call chain could deadlock; it is still queued.
                if grp not in chain:
                    waits.append(delivery.done)
        if not waits:
            return
        # asyncio.wait (not gather) so a cancelled publisher does not cancel the deliveries.
        await asyncio.wait(waits)
        errors = [fut.exception() for fut in waits]
        for error in errors:
            if error is not None:
                raise error

    # -- workers --------------------------------------------------------------------------

    async def _run(self, grp: _Group, worker: _Worker) -> None:
        while not worker.stopping.is_set():
            delivery = await grp.queue.get()
            worker.busy = True
            try:
                await self._deliver(grp, worker, delivery)
            finally:
                worker.busy = False

    async def _deliver(self, grp: _Group, worker: _Worker, delivery: _Delivery) -> None:
        envelope = delivery.envelope
        token = _CHAIN.set(delivery.chain | {grp})
        try:
            while True:
                delivery.attempts += 1
                try:
                    await worker.handler(envelope)
                except Exception as exc:
                    if delivery.attempts >= self._max_attempts:
                        await self._dead_letter(grp, delivery, exc)
                        return
                    delay = self.backoff(delivery.attempts)
                    log.warning(
                        "bus.handler_failed",
                        event_id=str(envelope.event_id),
                        event_type=envelope.event_type,
                        group=grp.name,
                        attempt=delivery.attempts,
                        error_type=type(exc).__name__,
                        retry_in=delay,
                    )
                    await wait_event(worker.stopping, delay)
                    if worker.stopping.is_set():
                        self._hand_back(grp, delivery)
                        return
                else:
                    delivery.settle()
                    return
        except asyncio.CancelledError:
            self._hand_back(grp, delivery)
            raise
        finally:
            _CHAIN.reset(token)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1)))

    def _hand_back(self, grp: _Group, delivery: _Delivery) -> None:
        """A stopping worker returns an unfinished delivery to its group, or fails it."""
        if delivery.done.done():
            return
        if any(not w.stopping.is_set() for w in grp.workers):
            grp.queue.put_nowait(delivery)
        else:
            delivery.settle(TemporaryError(f"bus group {grp.name!r} stopped before handling the event"))

    async def _dead_letter(self, grp: _Group, delivery: _Delivery, exc: Exception) -> None:
        envelope = delivery.envelope
        log.error(
            "bus.dead_lettered",
            event_id=str(envelope.event_id),
            event_type=envelope.event_type,
            group=grp.name,
            attempt=delivery.attempts,
            error_type=type(exc).__name__,
        )
        self.dead_letters.append(DeadLetter(grp.name, envelope, repr(exc)))
        try:
            if self._on_dead_letter is not None:
                await self._on_dead_letter(grp.name, envelope, exc)
        except Exception as cb_exc:
            log.error(
                "bus.dead_letter_callback_failed",
                event_id=str(envelope.event_id),
                group=grp.name,
                error_type=type(cb_exc).__name__,
            )
        finally:
            delivery.settle()

    # -- stopping -------------------------------------------------------------------------

    async def _remove(self, grp: _Group, workers: list[_Worker]) -> None:
        for worker in workers:
            worker.stopping.set()
        if all(w.stopping.is_set() for w in grp.workers) and self._groups.get((grp.pattern, grp.name)) is grp:
            del self._groups[(grp.pattern, grp.name)]
        await self._shutdown(grp, workers)

    async def _shutdown(self, grp: _Group, workers: list[_Worker]) -> None:
        for worker in workers:
            worker.stopping.set()
            if not worker.busy and worker.task is not None:
                worker.task.cancel()
        tasks = {w.task for w in workers if w.task is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._stop_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        for worker in workers:
            if worker in grp.workers:
                grp.workers.remove(worker)
        if not grp.workers:
            grp.fail_pending(f"bus group {grp.name!r} stopped before handling the event")


def _consume_result(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
