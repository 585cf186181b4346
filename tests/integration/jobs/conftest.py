"""Fixtures for the executor tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.jobs.support import Db, make_db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    database = await make_db(tmp_path / "jobs.db")
    yield database
    await database.engine.dispose()
