"""NotificationsService: reacts to events, delivers, and keeps the delivery history."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.core.ports import Mailer, MailMessage
from algotrendy.db.inbox import apply_once
from algotrendy.services.notifications.interface import Channel, DeliveryRead
from algotrendy.services.notifications.settings import NotificationsSettings
from algotrendy.services.notifications.store import DeliveryRow
from algotrendy.services.users.interface import UserRegistered

log = structlog.get_logger(__name__)

SERVICE = "notifications"


def _read(row: DeliveryRow) -> DeliveryRead:
    return DeliveryRead(
        id=row.id,
        channel=row.channel,
        template=row.template,
        subject=row.subject,
        status=row.status,
        created_at=row.created_at,
        sent_at=row.sent_at,
        event_id=row.event_id,
    )


class NotificationsService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        clock: Clock,
        settings: NotificationsSettings,
        product_url: str,
    ) -> None:
        self._db = sessions
        self._mailer = mailer
        self._clock = clock
        self._s = settings
        self._url = product_url.rstrip("/")
        self._subs: list[Subscription] = []

    async def subscribe(self, bus: Bus) -> None:
        self._subs.append(
            await bus.subscribe(
                UserRegistered.topic, group=f"{SERVICE}.welcome", handler=self.on_user_registered
            )
        )

    async def unsubscribe(self) -> None:
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()

    async def on_user_registered(self, envelope: Envelope) -> None:
        event = UserRegistered.model_validate(envelope.data)
        if not self._s.welcome_email:
            return

        async def deliver(session: AsyncSession) -> None:
            message = MailMessage(
                to=event.email,
                subject="Welcome to AlgoTrendy",
                text=(
                    f"Hello {event.username},\n\nyour AlgoTrendy account is ready. Sign in at {self._url} to "
                    "chart market data, backtest strategies and paper-trade.\n"
                ),
            )
            # Raising here rolls back the inbox claim, so the bus redelivers and we try again.
            await self._mailer.send(message)
            now = self._clock.now()
            session.add(
                DeliveryRow(
                    id=uuid.uuid4(),
                    user_id=event.user_id,
                    channel="email",
                    template="welcome",
                    recipient=event.email,
                    subject=message.subject,
                    status="sent",
                    event_id=envelope.event_id,
                    created_at=now,
                    sent_at=now,
                )
            )

        applied = await apply_once(
            self._db, service=SERVICE, consumer="welcome", envelope=envelope, clock=self._clock, apply=deliver
        )
        log.info("notifications.user_registered", event_id=str(envelope.event_id), applied=applied)

    async def history(
        self, *, owner: uuid.UUID, channel: Channel | None, limit: int, offset: int
    ) -> list[DeliveryRead]:
        stmt = select(DeliveryRow).where(DeliveryRow.user_id == owner)
        if channel is not None:
            stmt = stmt.where(DeliveryRow.channel == channel)
        stmt = stmt.order_by(DeliveryRow.created_at.desc(), DeliveryRow.id).limit(limit).offset(offset)
        async with self._db() as session:
            return [_read(r) for r in (await session.execute(stmt)).scalars()]
