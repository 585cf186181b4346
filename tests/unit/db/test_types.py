from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from algotrendy.db.engine import begin_serialized, make_engine, make_sessionmaker
from algotrendy.db.types import DecimalString, UTCDateTime


async def test_utc_datetimes_and_exact_decimals_round_trip_on_sqlite(tmp_path: Path) -> None:
    md = MetaData()
    t = Table(
        "t",
        md,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime),
        Column("px", DecimalString),
    )
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(md.create_all)
        berlin = timezone(timedelta(hours=2))
        await conn.execute(
            insert(t).values(
                id=1, at=datetime(2024, 6, 1, 14, tzinfo=berlin), px=Decimal("0.1") + Decimal("0.2")
            )
        )
    async with engine.connect() as conn:
        at, px = (await conn.execute(select(t.c.at, t.c.px))).one()
    assert at == datetime(2024, 6, 1, 12, tzinfo=UTC) and at.tzinfo is not None
    assert px == Decimal("0.3") and isinstance(px, Decimal)
    async with engine.begin() as conn:
        with pytest.raises(Exception, match="naive"):
            await conn.execute(insert(t).values(id=2, at=datetime(2024, 1, 1)))
        with pytest.raises(Exception, match="non-finite"):
            await conn.execute(insert(t).values(id=3, px=Decimal("NaN")))
    await engine.dispose()


async def test_begin_serialized_commits_and_rolls_back(tmp_path: Path) -> None:
    md = MetaData()
    t = Table("t", md, Column("id", Integer, primary_key=True))
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(md.create_all)
    sessions = make_sessionmaker(engine)
    async with begin_serialized(sessions) as s:
        await s.execute(insert(t).values(id=1))
    with pytest.raises(RuntimeError):
        async with begin_serialized(sessions) as s:
            await s.execute(insert(t).values(id=2))
            raise RuntimeError("boom")
    async with sessions() as s:
        assert list((await s.execute(select(t.c.id))).scalars()) == [1]
    await engine.dispose()
