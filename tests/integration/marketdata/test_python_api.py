"""The in-process Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import talib

from algotrendy.app.api import Platform, bars
from algotrendy.services.marketdata.interface import BarsQuery
from tests.apphelp import make_settings


def test_bars_returns_a_dataframe_with_indicators(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, services=["marketdata"], marketdata={"load_samples": True})
    df = bars("GOOG", interval="1d", indicators="ema:10", period="max", settings=settings)
    assert len(df) == 2148 and str(df.index.tz) == "UTC"
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "ema_10"]
    np.testing.assert_allclose(df["ema_10"].to_numpy(), talib.EMA(df["close"].to_numpy(), 10), rtol=1e-12)


async def test_platform_gives_the_same_answer_as_the_rest_api(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, marketdata={"load_samples": True})
    async with Platform.open(settings) as platform:
        series = await platform.marketdata.get_bars(
            query=BarsQuery(symbol="ETH/USDT", interval="1h", limit=24)
        )
        assert series.symbol == "ETHUSDT" and series.count == 24
        assert series.data["timestamp"][-1] == "2022-10-11T10:00:00Z"
