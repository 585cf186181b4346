"""Event bus on NATS JetStream (split mode): one file-backed stream, durable pull consumers.

Subjects are ``<subject_prefix>.<event_type>``; the message id header ``Nats-Msg-Id`` is the
event id, so JetStream drops a re-published event inside its duplicate window (2 minutes; the
consumers' inbox covers the rest). ``publish`` returns once JetStream has acknowledged it.

``subscribe(pattern, group=...)`` binds a durable pull consumer named from the group and the
pattern: every process subscribing with the same group shares its work, and a restarted process
resumes where the group left off. A handler that raises is redelivered (``nak`` with
exponential backoff from the delivery count); once a message has been delivered
``max_deliver`` times without success it is dead-lettered: copied to
``<dlq_prefix>.<group>`` (kept by the ``<stream>_DLQ`` stream) with headers naming the error,
logged, and terminated. Messages that are not a valid envelope are dead-lettered at once.

The bus enforces ``max_deliver`` itself, so the server-side consumer limit is unlimited: a
message whose handler kept crashing the process or outliving ``ack_wait`` is dead-lettered on
its next delivery, and one whose dead-lettering failed is retried, never parked silently.
``nats-py`` is an optional extra, imported in ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import structlog

from algotrendy.core.errors import TemporaryError
from algotrendy.core.events import Envelope, Handler

from .memory import validate_pattern

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import StreamConfig

log = structlog.get_logger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _token(text: str) -> str:
    return _UNSAFE.sub("_", text.replace("*", "any").replace(">", "all"))


def durable_name(group: str, pattern: str) -> str:
    """A consumer name (no dots or wildcards) unique per ``(group, pattern)``."""
    digest = hashlib.sha256(f"{group}\0{pattern}".encode()).hexdigest()[:10]
    return f"{_token(group)[:60]}-{_token(pattern)[:60]}-{digest}"


def _header_value(text: str) -> str:
    return " ".join(text.split())[:500]


class DeliveryAbandoned(Exception):
    """Earlier deliveries ended without an outcome (process crash or ``ack_wait`` exceeded)."""


class _Worker:
    def __init__(self) -> None:
        self.stopping = False
        self.task: asyncio.Task[None] | None = None


class _NatsSubscription:
    def __init__(self, bus: NatsBus, group: str, durable: str, handler: Handler) -> None:
        self.bus = bus
        self.group = group
        self.durable = durable
        self.handler = handler
        self.workers: list[_Worker] = []

    async def stop(self) -> None:
        """Stop fetching. An open pull request is let run out (``fetch_timeout``) rather than
        cancelled, since the server could deliver into it after we stopped listening and the
        message would then wait ``ack_wait``; what it brings is handled. In-flight handler calls
        get ``stop_timeout`` to finish. The durable consumer stays, so the group resumes here."""
        workers, self.workers = self.workers, []
        self.bus._subs.discard(self)
        for worker in workers:
            worker.stopping = True
        tasks = {w.task for w in workers if w.task is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.bus._stop_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)


class NatsBus:
    """``core.events.Bus`` on NATS JetStream; see the module docstring for the semantics."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "ALGOTRENDY",
        subject_prefix: str = "algotrendy.events",
        ack_wait: float = 30.0,
        max_deliver: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        name: str | None = None,
        dlq_prefix: str = "algotrendy.dlq",
        max_age: float | None = None,
        workers: int = 1,
        fetch_timeout: float = 1.0,
        publish_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        stop_timeout: float = 30.0,
    ) -> None:
        if max_deliver < 1 or workers < 1:
            raise ValueError("max_deliver and workers must be at least 1")
        self._url = url
        self._stream = stream
        self._prefix = subject_prefix
        self._dlq_stream = f"{stream}_DLQ"
        self._dlq_prefix = dlq_prefix
        self._ack_wait = ack_wait
        self._max_deliver = max_deliver
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._name = name
        self._max_age = max_age
        self._workers = workers
        self._fetch_timeout = fetch_timeout
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._stop_timeout = stop_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: set[_NatsSubscription] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (reconnecting for ever once connected) and create or update both streams."""
        from nats.aio.client import Client
        from nats.js.api import StorageType, StreamConfig

        if self._nc is not None and not self._nc.is_closed:
            return
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    self._url,
                    name=self._name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self._connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise TemporaryError(f"NATS is not reachable at {self._url}") from exc
        js = nc.jetstream(timeout=self._publish_timeout)
        await self._ensure_stream(
            js,
            StreamConfig(
                name=self._stream,
                subjects=[f"{self._prefix}.>"],
                storage=StorageType.FILE,
                max_age=self._max_age,
            ),
        )
        await self._ensure_stream(
            js,
            StreamConfig(name=self._dlq_stream, subjects=[f"{self._dlq_prefix}.>"], storage=StorageType.FILE),
        )
        self._nc, self._js = nc, js

    @staticmethod
    async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def close(self) -> None:
        """Stop every subscription, then drain the connection (pending publishes flush)."""
        await asyncio.gather(*(sub.stop() for sub in list(self._subs)))
        nc, self._nc, self._js = self._nc, None, None
        if nc is None or nc.is_closed:
            return
        try:
            await nc.drain()
        except Exception as exc:
            log.warning("bus.nats_drain_failed", error_type=type(exc).__name__)
            with contextlib.suppress(Exception):
                await nc.close()

    async def ping(self) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise TemporaryError("NATS connection is not connected")
        try:
            await nc.flush(timeout=2)
        except Exception as exc:
            raise TemporaryError("NATS did not answer a ping") from exc

    async def _on_error(self, exc: Exception) -> None:
        log.warning("bus.nats_error", error_type=type(exc).__name__, url=self._url)

    async def _on_disconnected(self) -> None:
        if self._nc is None:  # closing
            return
        log.warning("bus.nats_disconnected", url=self._url)

    async def _on_reconnected(self) -> None:
        log.info("bus.nats_reconnected", url=self._url)

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise TemporaryError("NATS bus is not started")
        return self._js

    # -- publish / subscribe --------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        js = self._jetstream()
        try:
            await js.publish(
                f"{self._prefix}.{envelope.event_type}",
                envelope.to_json(),
                timeout=self._publish_timeout,
                stream=self._stream,
                headers={"Nats-Msg-Id": str(envelope.event_id)},
            )
        except Exception as exc:
            raise TemporaryError(f"NATS did not accept event {envelope.event_id}") from exc

    async def subscribe(self, pattern: str, *, group: str, handler: Handler) -> _NatsSubscription:
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import BadRequestError

        validate_pattern(pattern)
        if not group:
            raise ValueError("group must not be empty")
        js = self._jetstream()
        durable = durable_name(group, pattern)
        config = ConsumerConfig(
            durable_name=durable,
            name=durable,
            description=f"group {group} on {pattern}",
            filter_subject=f"{self._prefix}.{pattern}",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=-1,
        )
        try:
            await js.add_consumer(self._stream, config)
        except BadRequestError as exc:  # exists with settings the server will not change
            log.warning("bus.consumer_not_updated", consumer=durable, error_type=type(exc).__name__)
        sub = _NatsSubscription(self, group, durable, handler)
        for _ in range(self._workers):
            psub = await js.pull_subscribe_bind(durable=durable, stream=self._stream)
            worker = _Worker()
            worker.task = asyncio.create_task(self._run(sub, worker, psub), name=f"bus:{durable}")
            sub.workers.append(worker)
        self._subs.add(sub)
        return sub

    # -- consuming ------------------------------------------------------------------------

    def backoff(self, num_delivered: int) -> float:
        """Seconds before redelivery after failed delivery number ``num_delivered``."""
        return float(min(self._backoff_max, self._backoff_base * 2 ** (num_delivered - 1)))

    async def _run(
        self, sub: _NatsSubscription, worker: _Worker, psub: JetStreamContext.PullSubscription
    ) -> None:
        try:
            while not worker.stopping:
                try:
                    msgs: list[Msg] = await psub.fetch(batch=1, timeout=self._fetch_timeout)
                except TimeoutError:
                    continue
                except Exception as exc:  # disconnected, server restarting, ...
                    log.warning("bus.fetch_failed", group=sub.group, error_type=type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                for msg in msgs:
                    try:
                        await self._process(sub, msg)
                    except Exception as exc:  # unacked: JetStream redelivers after ack_wait
                        log.error("bus.process_failed", group=sub.group, error_type=type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _process(self, sub: _NatsSubscription, msg: Msg) -> None:
        num_delivered = msg.metadata.num_delivered
        try:
            envelope = Envelope.from_json(msg.data)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            await self._dead_letter(sub, msg, exc, None)
            return
        if num_delivered > self._max_deliver:
            await self._dead_letter(
                sub, msg, DeliveryAbandoned(f"no outcome after {num_delivered - 1} deliveries"), envelope
            )
            return
        try:
            await sub.handler(envelope)
        except Exception as exc:
            if num_delivered >= self._max_deliver:
                await self._dead_letter(sub, msg, exc, envelope)
                return
            delay = self.backoff(num_delivered)
            log.warning(
                "bus.handler_failed",
                event_id=str(envelope.event_id),
                event_type=envelope.event_type,
                group=sub.group,
                attempt=num_delivered,
                error_type=type(exc).__name__,
                retry_in=delay,
            )
            await self._settle(msg.nak(delay=delay), sub)
            return
        await self._settle(msg.ack(), sub)

    async def _settle(self, ack: Awaitable[None], sub: _NatsSubscription) -> None:
        try:
            await ack
        except Exception as exc:  # JetStream redelivers after ack_wait
            log.warning("bus.ack_failed", group=sub.group, error_type=type(exc).__name__)

    async def _dead_letter(
        self, sub: _NatsSubscription, msg: Msg, exc: Exception, envelope: Envelope | None
    ) -> None:
        js = self._jetstream()
        md = msg.metadata
        seq = md.sequence.stream
        headers = {
            "Nats-Msg-Id": f"dlq-{self._stream}-{seq}-{sub.durable}",
            "Algotrendy-Group": sub.group,
            "Algotrendy-Subject": msg.subject,
            "Algotrendy-Stream-Seq": str(seq),
            "Algotrendy-Num-Delivered": str(md.num_delivered),
            "Algotrendy-Error-Type": type(exc).__name__,
            "Algotrendy-Error": _header_value(repr(exc)),
        }
        fields = {
            "event_id": str(envelope.event_id) if envelope else None,
            "event_type": envelope.event_type if envelope else None,
            "group": sub.group,
            "attempt": md.num_delivered,
            "error_type": type(exc).__name__,
            "stream_seq": seq,
        }
        try:
            await js.publish(
                f"{self._dlq_prefix}.{_token(sub.group)}",
                msg.data,
                timeout=self._publish_timeout,
                stream=self._dlq_stream,
                headers=headers,
            )
        except Exception as dlq_exc:
            log.error("bus.dead_letter_failed", **fields, dlq_error_type=type(dlq_exc).__name__)
            await self._settle(msg.nak(delay=self._backoff_max), sub)
            return
        log.error("bus.dead_lettered", **fields)
        await self._settle(msg.term(), sub)
