"""``NotificationsApi.history`` on ``NotificationsService`` and on ``NotificationsClient``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from algotrendy.core.errors import Forbidden, Invalid, Unauthorized
from algotrendy.services.notifications.client import NotificationsClient
from algotrendy.services.notifications.interface import DeliveryRead, NotificationsApi
from tests.apphelp import Api

ForToken = Callable[[str], NotificationsApi]


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture(params=["service", "client"])
def notifications_for(request: pytest.FixtureRequest, api: Api, http: httpx.AsyncClient) -> ForToken:
    """``notifications_for(access_token)``: the API as the token's owner, on either side."""
    if request.param == "service":
        service: NotificationsApi = api.app.state.services["notifications"]
        return lambda _token: service
    return lambda token: NotificationsClient(http, token=token)


async def _welcome(notifications: NotificationsApi, owner: uuid.UUID) -> list[DeliveryRead]:
    for _ in range(100):  # the welcome mail follows user.registered through the outbox and the bus
        items = await notifications.history(owner=owner, channel=None, limit=50, offset=0)
        if items:
            return items
        await asyncio.sleep(0.1)
    raise AssertionError("no welcome delivery arrived")


async def test_history_lists_the_welcome_mail_and_filters_by_channel(
    api: Api, notifications_for: ForToken
) -> None:
    user, headers, _password = await api.user()
    owner = uuid.UUID(user["id"])
    notifications = notifications_for(_token(headers))
    items = await _welcome(notifications, owner)
    assert [(d.channel, d.template, d.status) for d in items] == [("email", "welcome", "sent")]
    assert items[0].sent_at is not None and items[0].event_id is not None
    assert await notifications.history(owner=owner, channel="telegram", limit=50, offset=0) == []
    assert await notifications.history(owner=owner, channel="email", limit=50, offset=1) == []
    assert await notifications.history(owner=owner, channel="email", limit=1, offset=0) == items


async def test_history_shows_only_the_owners_deliveries(api: Api, notifications_for: ForToken) -> None:
    first, first_headers, _ = await api.user()
    second, second_headers, _ = await api.user()
    mine = await _welcome(notifications_for(_token(first_headers)), uuid.UUID(first["id"]))
    theirs = await _welcome(notifications_for(_token(second_headers)), uuid.UUID(second["id"]))
    assert len(mine) == len(theirs) == 1 and mine[0].id != theirs[0].id


async def test_client_refuses_other_owners_and_maps_errors(api: Api, http: httpx.AsyncClient) -> None:
    user, headers, _password = await api.user()
    client = NotificationsClient(http, token=_token(headers))
    with pytest.raises(Forbidden) as other:
        await client.history(owner=uuid.uuid4(), channel=None, limit=10, offset=0)
    assert other.value.code == "not_token_owner"
    with pytest.raises(Invalid) as bad_limit:
        await client.history(owner=uuid.UUID(user["id"]), channel=None, limit=0, offset=0)
    assert (bad_limit.value.code, bad_limit.value.field) == ("validation_error", "limit")
    with pytest.raises(Unauthorized) as anonymous:
        await NotificationsClient(http).history(owner=uuid.UUID(user["id"]), channel=None, limit=10, offset=0)
    assert anonymous.value.code == "missing_token"
