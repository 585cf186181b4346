"""Contract fixtures: every suite here runs once on the service and once on its HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from algotrendy.services.users.client import UsersClient
from algotrendy.services.users.interface import TokenPair, UsersApi
from tests.apphelp import Api
from tests.contract._sides import Side


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the running app, as a remote process would hold one."""
    transport = httpx.ASGITransport(app=api.app, client=("127.0.0.2", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://users.internal") as client:
        yield client


@pytest.fixture(params=["service", "client"])
async def side(request: pytest.FixtureRequest, api: Api, http: httpx.AsyncClient) -> Side:
    if request.param == "service":
        service: UsersApi = api.users
        return Side("service", api, anon=service, as_=lambda _tokens: service)
    client = UsersClient(http)

    def as_(tokens: TokenPair) -> UsersApi:
        return client.with_token(tokens.access_token)

    return Side("client", api, anon=client, as_=as_)
