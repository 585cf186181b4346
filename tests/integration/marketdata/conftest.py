"""One app per module with the bundled sample data loaded (loading takes a second or two)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def md(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("md")
    settings = make_settings(tmp, marketdata={"load_samples": True, "replay_speed": 60_000})
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(md: Api) -> dict[str, str]:
    _user, headers, _ = await md.user()
    return headers
