"""Broker connections: exchange and broker API keys, checked at the venue and stored encrypted.

A key is refused when the venue says it can withdraw funds, or when the venue cannot tell and its
owner has not stated that withdrawals are disabled (RELIABILITY.md: "a key with withdrawal rights
is refused"). Secrets are encrypted with the platform's ``SecretBox`` (Fernet) before they are
written and never leave the service again: answers show a hint of the key id only.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.venue import KeyPermissions, VenueError
from algotrendy.services.trading import store
from algotrendy.services.trading.interface import ConnectionCreate, ConnectionRead
from algotrendy.services.trading.venues import Credentials, Venues

MAX_PER_OWNER = 20


def fingerprint(data: ConnectionCreate) -> str:
    """The venue account a key opens: one connection each, so orders can be attributed."""
    text = f"{data.venue}|{data.sandbox}|{data.base_url or ''}|{data.api_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def _hint(api_key: str) -> str:
    return f"{api_key[:4]}...{api_key[-2:]}" if len(api_key) > 8 else "****"


def _read(row: dict[str, object], box: SecretBox) -> ConnectionRead:
    return ConnectionRead(
        connection_id=row["id"],
        venue=str(row["venue"]),
        label=str(row["label"]),
        sandbox=bool(row["sandbox"]),
        api_key_hint=_hint(box.decrypt(str(row["api_key"]))),
        permissions=str(row["permissions"]),
        created_at=row["created_at"],
    )


def judge(perms: KeyPermissions, data: ConnectionCreate) -> str:
    """The stored permissions note, or ``Invalid`` for a key that must be refused."""
    if not perms.can_trade:
        raise Invalid(
            f"this key cannot trade at {data.venue} ({perms.detail})", field="api_key", code="cannot_trade"
        )
    if perms.can_withdraw:
        raise Invalid(
            f"this key can withdraw funds at {data.venue}: create a key without withdrawal rights",
            field="api_key",
            code="withdrawal_enabled",
        )
    if perms.can_withdraw is None and not data.withdrawals_disabled:
        raise Invalid(
            f"{data.venue} offers no way to check whether this key can withdraw; disable withdrawals on the "
            "key and say so with withdrawals_disabled=true",
            field="withdrawals_disabled",
            code="withdrawal_unverifiable",
        )
    how = "checked at the venue" if perms.can_withdraw is False else "stated by the owner"
    return f"trade; no withdrawals ({how}: {perms.detail})"[:300]


class Connections:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        venues: Venues,
        allow_base_url: bool,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._venues = venues
        self._allow_base_url = allow_base_url

    async def create(self, *, owner_id: uuid.UUID, data: ConnectionCreate, now: datetime) -> ConnectionRead:
        if data.base_url is not None and not self._allow_base_url:
            raise Invalid("custom venue addresses are disabled on this server", field="base_url")
        async with self._sessions() as session:
            count = len(
                (
                    await session.execute(
                        select(store.connections.c.id).where(store.connections.c.owner_id == owner_id)
                    )
                ).all()
            )
        if count >= MAX_PER_OWNER:
            raise Invalid(f"at most {MAX_PER_OWNER} connections per user", field="venue")
        credentials = Credentials(
            venue=data.venue,
            api_key=data.api_key,
            secret=data.secret,
            password=data.password,
            sandbox=data.sandbox,
            base_url=data.base_url,
        )
        try:
            venue = self._venues.build_live(credentials)
        except ValueError as exc:
            raise Invalid(
                f"unknown venue {data.venue!r}: 'alpaca' or a ccxt exchange id", field="venue"
            ) from exc
        try:
            await venue.connect()
            perms = await venue.permissions()
        except VenueError as exc:
            raise Invalid(
                f"{data.venue} refused the key or could not be reached: {exc}", field="api_key"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                await venue.close()
        note = judge(perms, data)
        async with self._sessions() as session:
            taken = (
                await session.execute(
                    select(store.connections.c.id).where(store.connections.c.fingerprint == fingerprint(data))
                )
            ).first()
        if taken is not None:
            raise Conflict(
                "this key is already connected; use that connection for several portfolios",
                code="connection_exists",
            )
        row = {
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "venue": data.venue,
            "label": data.label,
            "sandbox": data.sandbox,
            "api_key": self._box.encrypt(data.api_key),
            "secret": self._box.encrypt(data.secret),
            "password": self._box.encrypt(data.password) if data.password else None,
            "base_url": data.base_url,
            "permissions": note,
            "fingerprint": fingerprint(data),
            "created_at": now,
        }
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(insert(store.connections).values(**row))
        except IntegrityError:
            raise Conflict(
                "this key is already connected; use that connection for several portfolios",
                code="connection_exists",
            ) from None
        return _read(row, self._box)

    async def list(self, *, owner_id: uuid.UUID) -> list[ConnectionRead]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(store.connections)
                .where(store.connections.c.owner_id == owner_id)
                .order_by(store.connections.c.created_at)
            )
            return [_read(dict(r), self._box) for r in rows.mappings()]

    async def delete(self, *, owner_id: uuid.UUID, connection_id: uuid.UUID) -> None:
        async with self._sessions() as session, session.begin():
            row = (
                (
                    await session.execute(
                        select(store.connections).where(store.connections.c.id == connection_id)
                    )
                )
                .mappings()
                .first()
            )
            if row is None or row["owner_id"] != owner_id:
                raise NotFound(f"connection {connection_id} not found")
            used = (
                await session.execute(
                    select(store.accounts.c.portfolio_id).where(
                        store.accounts.c.connection_id == connection_id
                    )
                )
            ).first()
            if used is not None:
                raise Conflict(
                    f"portfolio {used[0]} trades through this connection; delete the portfolio first",
                    code="connection_in_use",
                )
            await session.execute(delete(store.connections).where(store.connections.c.id == connection_id))
