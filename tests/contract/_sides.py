"""The two sides a contract suite runs on: the in-process service and its HTTP client.

A ``Side`` hands out the API "as" someone: on the service side that is the one service object
(the caller passes ids explicitly, as other services do); on the client side it is the client
holding that person's access token, talking to the same running app over ``httpx.ASGITransport``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from algotrendy.core.auth import Role
from algotrendy.services.users.interface import LoginRequest, TokenPair, UserCreate, UserRead, UsersApi
from tests.apphelp import Api, remember

IP, UA = "127.0.0.1", "contract-tests"


def claims(token: str) -> dict[str, Any]:
    """The access token's claims, unverified: tests only need ``sub`` and ``sid``."""
    return jwt.decode(token, options={"verify_signature": False})


@dataclass
class Person:
    user: UserRead
    password: str
    tokens: TokenPair
    users: UsersApi

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def sid(self) -> uuid.UUID:
        return uuid.UUID(claims(self.tokens.access_token)["sid"])


@dataclass
class Side:
    name: str
    api: Api
    anon: UsersApi
    as_: Callable[[TokenPair], UsersApi]

    async def login(self, username: str, password: str) -> TokenPair:
        data = LoginRequest(username=username, password=password)
        pair = await self.anon.login(data=data, ip=IP, user_agent=UA)
        remember(pair.access_token, pair.refresh_token)
        return pair

    async def person(self, *, role: Role = Role.TRADER, username: str | None = None) -> Person:
        """A fresh account (registered on this side; admins are bootstrapped in-process), logged in."""
        username = username or f"c{uuid.uuid4().hex[:12]}"
        password = f"pw-{uuid.uuid4().hex}"
        email = f"{username}@example.com"
        remember(password, email)
        data = UserCreate(email=email, username=username, password=password)
        if role is Role.TRADER:
            user = await self.anon.register(data=data, ip=IP)
        else:
            user = await self.api.users.create_user(data=data, role=role, verified=True)
        tokens = await self.login(username, password)
        return Person(user=user, password=password, tokens=tokens, users=self.as_(tokens))
