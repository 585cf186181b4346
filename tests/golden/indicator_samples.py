"""Real sample series (src/algotrendy/sample_data) as ``Bars``, for the indicator golden tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

import algotrendy
from algotrendy.core.market import Bars

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
FILES = {
    "SPY_1d": "SPY_1d.csv",
    "BTCUSDT_1h": "BTCUSDT_1h_binance.csv.gz",
    "BTCUSDT_1m": "BTCUSDT_1m_binance.csv.gz",
    "EURUSD_1h": "EURUSD_1h.csv",
}


@cache
def load(name: str) -> Bars:
    df = pd.read_csv(SAMPLES / FILES[name], parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts, dtype=np.int64), *cols)
