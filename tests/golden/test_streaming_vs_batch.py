"""Every catalog indicator, fed bar by bar through its streaming form over a whole real series,
equals its batch form: same NaN warm-up positions and the same values (bit for bit in practice;
the contract is 1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.indicators import catalog, compute, stream
from tests.golden.indicator_samples import load

SERIES = ("SPY_1d", "BTCUSDT_1h")


def streamed(name: str, bars: Bars, **params: object) -> np.ndarray:
    s = stream(name, **params)
    ts, o, h, lo, c, v = (
        bars.ts.tolist(),
        bars.open.tolist(),
        bars.high.tolist(),
        bars.low.tolist(),
        bars.close.tolist(),
        bars.volume.tolist(),
    )
    rows = [s.update_bar(ts[i], o[i], h[i], lo[i], c[i], v[i]) for i in range(len(bars))]
    return np.array(rows, dtype=np.float64).reshape(len(bars), len(s.outputs))


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("name", [s.name for s in catalog()])
def test_streaming_equals_batch_on_real_data(series: str, name: str) -> None:
    bars = load(series)
    batch = compute(name, bars)
    rows = streamed(name, bars)
    for j, output in enumerate(batch):
        got, want = rows[:, j], batch[output]
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name}.{output}: NaN positions differ"
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True, err_msg=f"{name}.{output}")


def test_no_drift_over_a_million_bars() -> None:
    """Running sums (SMA, BBANDS' sum of squares, WMA) stay equal to batch over 1M bars: the streams
    are TA-Lib's own, doing TA-Lib's arithmetic, so there is no drift to correct."""
    rng = np.random.default_rng(1)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, 1_000_000)))
    bars = Bars(np.arange(len(close), dtype=np.int64), close, close, close, close, close)
    for name in ("sma", "bbands", "wma"):
        s = stream(name)
        rows = np.array([s.update_bar(0, x, x, x, x, x) for x in close.tolist()], dtype=np.float64)
        for j, want in enumerate(compute(name, bars).values()):
            assert np.array_equal(rows[:, j], want, equal_nan=True), name
