"""engine.ml.streaming.FeatureStream: fed bar by bar over real sample series, every row equals
``features.compute``'s row at the same bar (NaN positions included); lags, odd parameters, flat
and zero-volume bars, the fallback for kinds without a streaming rule, and refused input."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.ml import streaming
from algotrendy.engine.ml.features import FEATURE_SETS, compute, compute_last, parse
from algotrendy.engine.ml.streaming import FeatureStream
from tests.fakes.data import sample

SERIES = ("AAPL_1d", "BTCUSDT_1h_binance", "ETHUSDT_1m_binance")
HOUR = 3600 * 10**9


@cache
def _bars(name: str) -> Bars:
    return sample(name).bars()


def _stream(stream: FeatureStream, bars: Bars) -> np.ndarray:
    """Every row ``update`` returns, one per bar."""
    ts, o, h, lo, c, v = (
        x.tolist() for x in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    )
    rows = [stream.update(ts[i], o[i], h[i], lo[i], c[i], v[i]) for i in range(len(ts))]
    return np.array(rows).reshape(len(ts), len(stream.names))


def _assert_rows_equal(got: np.ndarray, want: np.ndarray, names: list[str], rtol: float = 1e-9) -> None:
    assert got.shape == want.shape
    for j, name in enumerate(names):
        g, w = got[:, j], want[:, j]
        nan_g, nan_w = np.isnan(g), np.isnan(w)
        assert np.array_equal(nan_g, nan_w), f"{name}: NaN at bars {np.flatnonzero(nan_g != nan_w)[:5]}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-12, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("features", list(FEATURE_SETS))
@pytest.mark.parametrize("series", SERIES)
def test_every_row_equals_compute_on_real_series(series: str, features: str) -> None:
    bars = _bars(series)
    stream = FeatureStream(features)
    want = compute(bars, features)
    assert stream.names == want.names
    _assert_rows_equal(_stream(stream, bars), want.values, stream.names)


def test_lags_and_lag_only_bases() -> None:
    """Lags of every kind of base, including bases that are not columns themselves."""
    features = [
        "ret_1",
        "lag(rsi_14,1..3)",
        "vol_20_lag5",
        "volume_z_20_lag2",
        "macd_hist_pct_lag1",
        "obv_slope_5_lag7",
        "ret_20_lag30",
        "stoch_d_14_3_3_lag1",
        "dow_sin_lag1",
        "gap_lag2",
        "bb_pctb_20",
        "bb_pctb_20_lag4",
    ]
    bars = _bars("BTCUSDT_1h_binance").slice(0, 6000)
    stream = FeatureStream(features)
    want = compute(bars, features)
    assert stream.names == want.names
    assert "rsi_14" not in stream.names
    _assert_rows_equal(_stream(stream, bars), want.values, stream.names)


def test_odd_parameters() -> None:
    features = (
        "ret_3, vol_2, vol_7, park_1, park_3, volume_z_2, dollar_vol_1, obv_slope_2, gap, co_ret, hl_range, "
        "clv, bb_pctb_10_1.5, bb_width_5_3, stoch_k_5_3_3, stoch_d_9_5_2, macd_pct_5_10_3, "
        "macd_signal_pct_5_10_3, rsi_2, atr_pct_3, adx_5, cci_3, willr_2, mfi_3, sma_dist_2, ema_dist_3"
    )
    bars = _bars("AAPL_1d")
    stream = FeatureStream(features)
    _assert_rows_equal(_stream(stream, bars), compute(bars, features).values, stream.names)


def test_obv_slope_over_one_bar_is_the_sign_of_the_move() -> None:
    """``compute`` cannot do this one (TA-Lib's SUM refuses a 1-bar period); the stream answers
    what ``compute_last`` does."""
    bars = _bars("AAPL_1d").slice(0, 300)
    got = _stream(FeatureStream("obv_slope_1"), bars)[:, 0]
    assert math.isnan(got[0])
    np.testing.assert_array_equal(got[1:], np.sign(np.diff(bars.close)))
    assert got[-1] == compute_last(bars, "obv_slope_1")[0]


def _flat_bars(n: int = 400) -> Bars:
    """A price that often stands still for many bars (high == low), with runs of zero volume."""
    rng = np.random.default_rng(7)
    steps = np.where(rng.random(n) < 0.3, rng.normal(0, 0.01, n), 0.0)
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.r_[close[0], close[:-1]]
    wide = rng.random(n) < 0.5
    high = np.where(wide, np.maximum(open_, close) * 1.002, np.maximum(open_, close))
    low = np.where(wide, np.minimum(open_, close) * 0.998, np.minimum(open_, close))
    volume = np.where(rng.random(n) < 0.4, 0.0, rng.integers(1, 50, n).astype(np.float64))
    volume[100:160] = 0.0
    volume[200:260] = 7.0
    close[300:380] = open_[300:380] = high[300:380] = low[300:380] = close[299]
    ts = np.arange(n, dtype=np.int64) * HOUR + 1_700_000_000 * 10**9
    return Bars(ts, open_, high, low, close, volume)


def test_flat_prices_and_zero_volume_give_the_batch_neutral_values() -> None:
    bars = _flat_bars()
    stream = FeatureStream("extended")
    want = compute(bars, "extended")
    got = _stream(stream, bars)
    _assert_rows_equal(got, want.values, stream.names)
    names = stream.names
    assert got[350, names.index("clv")] == 0.5
    assert got[150, names.index("volume_z_20")] == 0.0
    assert got[150, names.index("obv_slope_20")] == 0.0


def test_warm_then_update_and_ready() -> None:
    bars = _bars("BTCUSDT_1h_binance").slice(0, 3000)
    plan = parse("standard")
    want = compute(bars, plan).values
    stream = FeatureStream(plan)
    assert not stream.ready
    assert np.isnan(stream.warm(bars.slice(0, 0))).all()
    row = stream.warm(bars.slice(0, plan.warmup))
    assert not stream.ready
    assert np.isnan(row).any()
    row = stream.warm(bars.slice(plan.warmup, plan.warmup + 1))
    assert stream.ready
    assert np.isfinite(row).all()
    np.testing.assert_array_equal(row, want[plan.warmup])
    row = stream.warm(bars.slice(plan.warmup + 1, 2000))
    np.testing.assert_array_equal(row, want[1999])
    rest = _stream(stream, bars.slice(2000, 3000))
    _assert_rows_equal(rest, want[2000:], stream.names)
    # the stream's state is where compute_last's approximates it from a window
    np.testing.assert_allclose(rest[-1], compute_last(bars, plan), rtol=1e-6, atol=1e-6)


def test_update_returns_a_new_array_each_call() -> None:
    bars = _bars("AAPL_1d").slice(0, 100)
    stream = FeatureStream("minimal")
    rows = _stream(stream, bars.slice(0, 99))
    first = stream.update(int(bars.ts[99]), 1.0, 1.0, 1.0, 1.0, 1.0)
    second = stream.update(int(bars.ts[99]) + 1, 2.0, 2.0, 2.0, 2.0, 2.0)
    assert first is not second
    assert not np.shares_memory(first, second)
    assert rows.shape == (99, len(stream.names))


def test_kinds_without_a_rule_fall_back_to_compute_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind with no streaming rule is computed from a ring of its window; finite-memory ones
    stay exact, infinite-memory ones within compute_last's 1e-6."""
    for kind in ("vol", "rsi", "obv_slope"):
        monkeypatch.delitem(streaming._RULES, kind)
    features = ["ret_1", "vol_20", "rsi_14", "obv_slope_20_lag2", "rsi_14_lag1", "sma_dist_20"]
    bars = _bars("BTCUSDT_1h_binance").slice(0, 1500)
    stream = FeatureStream(features)
    assert stream._fallback is not None
    assert stream._fallback.plan.names == ["vol_20", "rsi_14", "obv_slope_20_lag2", "rsi_14_lag1"]
    got, want = _stream(stream, bars), compute(bars, features).values
    exact = [j for j, n in enumerate(stream.names) if not n.startswith("rsi")]
    _assert_rows_equal(got[:, exact], want[:, exact], [stream.names[j] for j in exact])
    _assert_rows_equal(got, want, stream.names, rtol=1e-6)


def test_indicators_through_the_catalog_streaming_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generic path (an indicator that is not a plain TA-Lib call on close / high-low-close /
    +volume: none today) goes through ``indicators.streaming``'s objects; same rows."""
    monkeypatch.setattr(streaming, "_GROUPS", {})
    bars = _bars("AAPL_1d")
    stream = FeatureStream("standard")
    assert [len(g) for g in stream._groups] == [0, 0, 0, 12]
    _assert_rows_equal(_stream(stream, bars), compute(bars, "standard").values, stream.names)


def _bar(
    ts: int, price: float = 100.0, volume: float = 10.0
) -> tuple[int, float, float, float, float, float]:
    return (ts, price, price * 1.01, price * 0.99, price, volume)


@pytest.mark.parametrize("offset", [0, -1, -HOUR])
def test_non_increasing_ts_raises_and_changes_nothing(offset: int) -> None:
    stream, reference = FeatureStream("standard"), FeatureStream("standard")
    bars = _bars("AAPL_1d").slice(0, 120)
    _stream(stream, bars.slice(0, 100))
    _stream(reference, bars.slice(0, 100))
    last = int(bars.ts[99])
    with pytest.raises(ValueError, match="ts must increase"):
        stream.update(last + offset, 100.0, 101.0, 99.0, 100.0, 10.0)
    _assert_rows_equal(
        _stream(stream, bars.slice(100, 120)), _stream(reference, bars.slice(100, 120)), stream.names
    )


@pytest.mark.parametrize(
    "bad",
    [
        (math.nan, 101.0, 99.0, 100.0, 10.0),
        (100.0, math.inf, 99.0, 100.0, 10.0),
        (100.0, 101.0, 0.0, 100.0, 10.0),
        (100.0, 101.0, 99.0, -1.0, 10.0),
        (100.0, 101.0, 99.0, 100.0, -1.0),
        (100.0, 101.0, 99.0, 100.0, math.nan),
    ],
)
def test_bad_bar_raises_and_changes_nothing(bad: tuple[float, ...]) -> None:
    stream, reference = FeatureStream("extended"), FeatureStream("extended")
    for i in range(300):
        bar = _bar(i * HOUR, 100.0 + math.sin(i / 7.0), 10.0 + i % 5)
        stream.update(*bar)
        reference.update(*bar)
    with pytest.raises(ValueError, match="rejected"):
        stream.update(300 * HOUR, *bad)
    for i in range(300, 320):
        bar = _bar(i * HOUR, 100.0 + math.sin(i / 7.0), 10.0 + i % 5)
        np.testing.assert_array_equal(stream.update(*bar), reference.update(*bar))


def test_first_bar_only_ts_checks_nothing_before_it() -> None:
    stream = FeatureStream(["ret_1", "co_ret", "hour_sin"])
    row = stream.update(-5 * HOUR, *_bar(0)[1:])
    assert math.isnan(row[0])
    assert row[1] == 0.0
    assert row[2] == pytest.approx(math.sin(2 * math.pi * 19 / 24))
    assert "3 features, 1 bars" in repr(stream)
