"""HTTP front door of the notifications service: ``/api/v1/notifications/*``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from algotrendy.gateway.auth import CurrentUser
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.notifications.interface import Channel, DeliveryRead, NotificationsApi


async def notifications_api(request: Request) -> NotificationsApi:
    api: NotificationsApi = request.app.state.services["notifications"]
    return api


Notifications = Annotated[NotificationsApi, Depends(notifications_api)]

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], responses=PROBLEM_RESPONSES)


@router.get("/history")
async def history(
    user: CurrentUser,
    notifications: Notifications,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[DeliveryRead]:
    """Your notification deliveries, newest first."""
    return await notifications.history(owner=user.user_id, channel=channel, limit=limit, offset=offset)
