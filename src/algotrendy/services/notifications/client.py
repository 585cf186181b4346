"""``NotificationsClient``: the ``NotificationsApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``NotificationsService``. The owner is the
bearer token's user: asking for anyone else's history is refused locally with ``Forbidden``.
Problem+json errors come back as the matching ``core.errors`` class with ``code`` and ``detail``;
a transport failure or a 5xx is ``TemporaryError`` (``gateway.remote``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.notifications.interface import Channel, DeliveryRead, NotificationsApi

_HISTORY = TypeAdapter(list[DeliveryRead])


class NotificationsClient(RemoteApi):
    """``NotificationsApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "notifications"

    def with_token(self, token: str) -> NotificationsClient:
        return NotificationsClient(self._http, token=token)

    async def history(
        self, *, owner: uuid.UUID, channel: Channel | None, limit: int, offset: int
    ) -> list[DeliveryRead]:
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if channel is not None:
            params["channel"] = channel
        return self._parse(await self._send("GET", "/api/v1/notifications/history", params=params), _HISTORY)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: NotificationsClient) -> NotificationsApi:
        return client
