"""engine.ml.features: the spec language, hand-checked values, TA-Lib equality, NaN warm-up,
point-in-time correctness (a changed future leaves past rows bit-identical) and the single-row
path against the batch one."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime

import numpy as np
import pytest
import talib

from algotrendy.core.market import Bars, to_ns
from algotrendy.engine.ml.feature_specs import KINDS
from algotrendy.engine.ml.features import (
    FEATURE_SETS,
    FeatureError,
    compute,
    compute_last,
    kinds,
    parse,
    warmup,
    window,
)
from tests.fakes.data import sample
from tests.golden.indicator_samples import load

HOUR = 3600 * 10**9
INFINITE = {k.name for k in KINDS.values() if k.settle(tuple(p.default for p in k.params)) > 0}


def _bars(close: list[float], **cols: list[float]) -> Bars:
    c = np.array(close, dtype=np.float64)
    n = len(c)
    ts = to_ns(datetime(2024, 1, 1, tzinfo=UTC)) + HOUR * np.arange(n, dtype=np.int64)
    col = {k: np.array(cols[k], dtype=np.float64) if k in cols else None for k in ("open", "high", "low")}
    return Bars(
        ts,
        col["open"] if col["open"] is not None else c.copy(),
        col["high"] if col["high"] is not None else c + 1.0,
        col["low"] if col["low"] is not None else c - 1.0,
        c,
        np.array(cols.get("volume", [100.0] * n), dtype=np.float64),
    )


# ---- the language -------------------------------------------------------------------------------


def test_names_are_canonical_with_every_parameter_written_out() -> None:
    plan = parse(["RSI", "rsi_14", "macd_hist_pct", "bb_pctb_20_2.5", "bb_width", " ret_5 ", "hl_range"])
    assert plan.names == [
        "rsi_14",  # "RSI" and "rsi_14" are one feature, kept once at the first position
        "macd_hist_pct_12_26_9",
        "bb_pctb_20_2.5",
        "bb_width_20_2",
        "ret_5",
        "hl_range",
    ]


def test_lags_and_sets_expand() -> None:
    plan = parse("minimal, lag(ret_1, 1..3), vol_20_lag2")
    assert plan.names == [*FEATURE_SETS["minimal"], "ret_1_lag1", "ret_1_lag2", "ret_1_lag3", "vol_20_lag2"]
    assert parse(["lag(rsi,2)"]).names == ["rsi_14_lag2"]
    assert parse("standard") is parse(["standard"])  # cached
    assert parse(parse("minimal")) is parse("minimal")


def test_the_named_sets() -> None:
    standard = parse("standard")
    assert len(standard.names) == 36
    assert len(parse("minimal").names) == 8
    extended = parse("extended")
    assert extended.names[:36] == standard.names
    assert len(extended.names) > 60
    groups = {KINDS[s.kind].group for s in standard.specs}
    assert groups == {"returns", "volatility", "bar", "indicator", "volume", "calendar"}
    assert any(s.lag for s in standard.specs)


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("rsx_14", "did you mean rsi"),
        ("standart", "did you mean standard"),
        ("rsi_1", "period must be int in [2, 100000], got 1"),
        ("rsi_x", "must be a number, got 'x'"),
        ("rsi_14_3", "rsi takes 1 parameter(s) (period), got 2"),
        ("macd_pct_26_12", "fast_period (26) must be less than slow_period (12)"),
        ("ret_0", "k must be int"),
        ("vol_1", "n must be int"),
        ("bb_pctb_20_nan", "must be a number"),
        ("ret_1_lag0", "lag must be in [1, 1000]"),
        ("lag(ret_1,3..1)", "empty lag range"),
        ("lag(nope,1)", "unknown feature"),
        ("hl_range_3", "hl_range takes 0 parameter(s)"),
    ],
)
def test_bad_items_raise_value_errors_naming_them(item: str, fragment: str) -> None:
    with pytest.raises(FeatureError) as err:
        parse(["ret_1", item])
    assert isinstance(err.value, ValueError)
    assert err.value.item == item
    assert repr(item) in str(err.value)
    assert fragment in str(err.value)
    assert str(err.value).startswith("features: ")


def test_empty_lists_and_non_strings_are_refused() -> None:
    with pytest.raises(FeatureError, match="no features"):
        parse([])
    with pytest.raises(FeatureError, match="empty feature name"):
        parse(["ret_1", " "])
    with pytest.raises(FeatureError, match="must be a string"):
        parse(["ret_1", 5])  # type: ignore[list-item]


def test_kinds_are_listed_and_all_implemented() -> None:
    listed = {k["name"]: k for k in kinds()}
    assert set(listed) == set(KINDS)
    assert listed["rsi"]["infinite_memory"] is True
    assert listed["sma_dist"]["infinite_memory"] is False
    assert {"rsi", "macd_pct", "macd_signal_pct", "macd_hist_pct", "atr_pct", "adx", "ema_dist"} == INFINITE
    # every kind computes, batch and single row
    every = [f"{k}_lag1" for k in KINDS]
    bars = load("SPY_1d").slice(0, 400)
    assert compute(bars, every).values.shape == (400, len(KINDS))
    assert compute_last(bars, every).shape == (len(KINDS),)


# ---- hand-checked values ------------------------------------------------------------------------


def test_returns_volatility_and_bar_shape_by_hand() -> None:
    close = [100.0, 102.0, 101.0, 105.0, 104.0, 104.0]
    bars = _bars(
        close,
        open=[99.0, 101.0, 102.0, 101.5, 105.0, 104.0],
        high=[101.0, 103.0, 102.5, 106.0, 105.5, 104.0],
        low=[98.0, 100.5, 100.0, 101.0, 103.0, 104.0],
    )
    f = compute(bars, ["ret_1", "ret_2", "vol_3", "park_2", "gap", "co_ret", "hl_range", "clv"])
    r1 = [math.log(close[i] / close[i - 1]) for i in range(1, 6)]
    nan = math.nan
    np.testing.assert_allclose(f.column("ret_1"), [nan, *r1], rtol=1e-15)
    np.testing.assert_allclose(
        f.column("ret_2"), [nan, nan, *(math.log(close[i] / close[i - 2]) for i in range(2, 6))], rtol=1e-15
    )
    vol3 = [statistics.pstdev(r1[i - 3 : i]) for i in range(3, 6)]
    np.testing.assert_allclose(f.column("vol_3"), [nan, nan, nan, *vol3], rtol=1e-12)
    hl = [math.log(h / lo) for h, lo in zip(bars.high, bars.low, strict=True)]
    park = [math.sqrt((hl[i - 1] ** 2 + hl[i] ** 2) / 2 / (4 * math.log(2))) for i in range(1, 6)]
    np.testing.assert_allclose(f.column("park_2"), [nan, *park], rtol=1e-13)
    gap = [math.log(bars.open[i] / close[i - 1]) for i in range(1, 6)]
    np.testing.assert_allclose(f.column("gap"), [nan, *gap], rtol=1e-15)
    np.testing.assert_allclose(f.column("co_ret"), np.log(bars.close / bars.open), rtol=1e-15)
    np.testing.assert_allclose(f.column("hl_range"), hl, rtol=1e-15)
    # clv: where the close sits in the bar; the last bar has high == low: neutral 0.5, not NaN
    assert f.column("clv")[0] == pytest.approx(2 / 3)
    assert f.column("clv")[-1] == 0.5
    assert warmup(["vol_3", "park_2"]) == 3
    assert window(["vol_3", "park_2"]) == 4


def test_calendar_by_hand_and_against_datetime() -> None:
    days = [
        datetime(2024, 1, 1, 0, 0, tzinfo=UTC),  # Monday, January, midnight
        datetime(2024, 3, 15, 18, 0, tzinfo=UTC),  # Friday, March, 18:00
        datetime(2024, 2, 29, 6, 30, tzinfo=UTC),  # leap day, Thursday
        datetime(1969, 12, 31, 23, 0, tzinfo=UTC),  # before the epoch: Wednesday, December
        datetime(2100, 3, 1, 12, 0, tzinfo=UTC),
    ]
    ts = np.array([to_ns(d) for d in days], dtype=np.int64)
    z = np.zeros(len(ts))
    bars = Bars(ts, z + 1, z + 1, z + 1, z + 1, z)
    names = ["dow_sin", "dow_cos", "hour_sin", "hour_cos", "month_sin", "month_cos"]
    f = compute(bars, names)
    assert f.values[0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    for i, d in enumerate(days):
        dow = 2 * math.pi * d.weekday() / 7
        hour = 2 * math.pi * (d.hour + d.minute / 60) / 24
        month = 2 * math.pi * (d.month - 1) / 12
        expected = [math.sin(dow), math.cos(dow), math.sin(hour), math.cos(hour)]
        np.testing.assert_allclose(
            f.values[i], [*expected, math.sin(month), math.cos(month)], rtol=0, atol=1e-15
        )
        np.testing.assert_allclose(compute_last(bars.slice(0, i + 1), names), f.values[i], rtol=0, atol=1e-15)
    # every day of 1900..2200 gets its month right
    day_ts = np.arange(-25_567, 84_000, dtype=np.int64) * 86_400 * 10**9
    month = day_ts.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64) % 12
    zz = np.ones(len(day_ts))
    got = compute(Bars(day_ts, zz, zz, zz, zz, zz), ["month_sin", "month_cos"]).values
    np.testing.assert_array_equal(got[:, 0], np.sin(2 * np.pi * month / 12.0))
    np.testing.assert_array_equal(got[:, 1], np.cos(2 * np.pi * month / 12.0))


def test_volume_features_by_hand() -> None:
    close = [10.0, 11.0, 11.0, 10.0, 12.0, 13.0]
    volume = [100.0, 200.0, 50.0, 300.0, 400.0, 0.0]
    bars = _bars(close, volume=volume)
    f = compute(bars, ["volume_z_3", "dollar_vol_2", "obv_slope_3"])
    lv = [math.log1p(v) for v in volume]
    z = [
        (lv[i] - statistics.fmean(lv[i - 2 : i + 1])) / statistics.pstdev(lv[i - 2 : i + 1])
        for i in (2, 3, 4, 5)
    ]
    np.testing.assert_allclose(f.column("volume_z_3"), [math.nan, math.nan, *z], rtol=1e-12)
    dv = [math.log1p((close[i - 1] * volume[i - 1] + close[i] * volume[i]) / 2) for i in range(1, 6)]
    np.testing.assert_allclose(f.column("dollar_vol_2"), [math.nan, *dv], rtol=1e-14)
    # OBV slope: the change of TA-Lib's OBV over 3 bars over their volume
    obv = talib.OBV(bars.close, bars.volume)
    slope = [(obv[i] - obv[i - 3]) / sum(volume[i - 2 : i + 1]) for i in (3, 4, 5)]
    np.testing.assert_allclose(f.column("obv_slope_3"), [math.nan] * 3 + slope, rtol=1e-14)
    # flat volume: z is 0 (not NaN or inf); no volume at all: the OBV slope is 0
    flat = compute(_bars([1.0, 2.0, 3.0, 4.0], volume=[0.0] * 4), ["volume_z_2", "obv_slope_2"])
    np.testing.assert_array_equal(flat.values[2:], np.zeros((2, 2)))
    np.testing.assert_array_equal(
        compute_last(_bars([1.0, 2.0, 3.0, 4.0], volume=[0.0] * 4), ["volume_z_2", "obv_slope_2"]), [0.0, 0.0]
    )


def test_lags_are_the_feature_shifted() -> None:
    bars = load("SPY_1d").slice(0, 300)
    f = compute(bars, ["ret_1", "ret_1_lag2", "rsi_14", "rsi_14_lag5"])
    np.testing.assert_array_equal(f.column("ret_1_lag2")[2:], f.column("ret_1")[:-2])
    np.testing.assert_array_equal(f.column("rsi_14_lag5")[5:], f.column("rsi_14")[:-5])
    assert np.isnan(f.column("rsi_14_lag5")[:19]).all()


# ---- indicators: TA-Lib called directly ---------------------------------------------------------


@pytest.mark.parametrize("series", ["SPY_1d", "BTCUSDT_1h"])
def test_indicator_features_equal_talib_called_directly(series: str) -> None:
    b = load(series).slice(0, 5000)
    h, lo, c, v = b.high, b.low, b.close, b.volume
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    expected = {
        "rsi_14": talib.RSI(c, 14),
        "macd_pct_12_26_9": 100.0 * macd / c,
        "macd_signal_pct_12_26_9": 100.0 * signal / c,
        "macd_hist_pct_12_26_9": 100.0 * hist / c,
        "atr_pct_14": talib.NATR(h, lo, c, 14),
        "adx_14": talib.ADX(h, lo, c, 14),
        "cci_20": talib.CCI(h, lo, c, 20),
        "willr_14": talib.WILLR(h, lo, c, 14),
        "mfi_14": talib.MFI(h, lo, c, v, 14),
        "stoch_k_14_3_3": talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)[0],
        "stoch_d_14_3_3": talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)[1],
        "bb_pctb_20_2": (c - lower) / (upper - lower),
        "bb_width_20_2": 100.0 * (upper - lower) / middle,
        "sma_dist_50": 100.0 * (c / talib.SMA(c, 50) - 1.0),
        "ema_dist_20": 100.0 * (c / talib.EMA(c, 20) - 1.0),
    }
    f = compute(b, list(expected))
    for name, want in expected.items():
        np.testing.assert_array_equal(f.column(name), want, err_msg=name)


# ---- warm-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize("series", ["SPY_1d", "BTCUSDT_1h", "EURUSD_1h"])
def test_nan_warmup_is_exactly_warmup(series: str) -> None:
    bars = load(series).slice(0, 3000)
    plan = parse("extended")
    f = compute(bars, plan)
    for j, spec in enumerate(plan.specs):
        col = f.values[:, j]
        assert np.isnan(col[: spec.warmup]).all(), spec.name
        assert np.isfinite(col[spec.warmup :]).all(), spec.name
        assert warmup([spec.name]) == spec.warmup
    assert warmup(plan) == max(s.warmup for s in plan.specs) == 199  # sma_dist_200
    assert np.isfinite(f.values[warmup(plan) :]).all()
    assert warmup("standard") == 60  # vol_60


# ---- point in time ------------------------------------------------------------------------------


def _garbage_future(bars: Bars, t: int, how: str, rng: np.random.Generator) -> Bars:
    n, k = len(bars), len(bars) - t - 1
    cols = {c: getattr(bars, c).copy() for c in ("open", "high", "low", "close", "volume")}
    for c, col in cols.items():
        if how == "random":
            col[t + 1 :] = rng.uniform(1.0, 1e6, k)
        elif how == "shifted":  # the future replaced by another stretch of the same series
            col[t + 1 :] = np.roll(getattr(bars, c), n // 3)[t + 1 :]
        else:  # missing: NaN bars
            col[t + 1 :] = np.nan
    ts = bars.ts.copy()
    ts[t + 1 :] += rng.integers(1, 10**12, k).cumsum()
    return Bars(ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"])


@pytest.mark.parametrize("series", ["BTCUSDT_1h", "SPY_1d"])
def test_features_use_no_data_after_their_timestamp(series: str) -> None:
    bars = load(series).slice(0, 2500)
    plan = parse("extended")
    before = compute(bars, plan).values
    rng = np.random.default_rng(7)
    for t in (0, 3, 59, 60, 200, 743, 1500, 2498):
        for how in ("random", "shifted", "missing"):
            after = compute(_garbage_future(bars, t, how, rng), plan).values
            # rows 0..t bit-identical (NaN where NaN), and the future did change
            np.testing.assert_array_equal(after[: t + 1], before[: t + 1], err_msg=f"t={t} {how}")
            assert not np.array_equal(after[t + 1 :], before[t + 1 :], equal_nan=True)
            # the single-row path at t does not look ahead either
            np.testing.assert_array_equal(
                compute_last(bars.slice(0, t + 1), plan),
                compute_last(_garbage_future(bars, t, how, rng).slice(0, t + 1), plan),
            )


# ---- the single-row path ------------------------------------------------------------------------


@pytest.mark.parametrize("series", ["BTCUSDT_1h", "SPY_1d", "EURUSD_1h"])
def test_compute_last_equals_the_last_batch_row(series: str) -> None:
    bars = load(series)
    plan = parse("extended")
    full = compute(bars, plan).values
    finite = np.array([s.kind not in INFINITE for s in plan.specs])
    for end in np.linspace(plan.window + 1, len(bars), 25).astype(int):
        want = full[end - 1]
        got = compute_last(bars.slice(end - plan.window, end), plan)
        same = compute_last(bars.slice(0, end), plan)  # a longer input reads the same last bars
        np.testing.assert_array_equal(got, same)
        # finite memory: the batch value to rounding
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-12, err_msg=f"end={end}")
        # infinite memory (EMA/Wilder): within 1e-6 of the full-history value (relative; absolute below 1)
        err = np.abs(got[~finite] - want[~finite]) / np.maximum(np.abs(want[~finite]), 1.0)
        assert err.max() < 1e-6, (end, [s.name for s in plan.specs if s.kind in INFINITE], err)


def test_compute_last_on_short_input_matches_the_batch_row() -> None:
    bars = load("BTCUSDT_1h")
    plan = parse("standard")
    for end in (1, 2, 15, 30, 61, 120):
        short = bars.slice(0, end)
        want = compute(short, plan).values[-1]
        got = compute_last(short, plan)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"end={end}")
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_windows_cover_the_infinite_memory_features() -> None:
    plan = parse("standard")
    by_name = {s.name: s for s in plan.specs}
    assert by_name["ret_1"].window == 2
    assert by_name["vol_60"].window == 61
    assert by_name["rsi_14"].window > 200  # warm-up 14 + settle
    assert plan.window == max(s.window for s in plan.specs) == window("standard")
    assert by_name["ret_1_lag2"].window == 4


def test_empty_bars() -> None:
    f = compute(Bars.empty(), "standard")
    assert f.values.shape == (0, 36)
    assert len(f) == 0
    assert np.isnan(compute_last(Bars.empty(), "standard")).all()
    with pytest.raises(KeyError):
        f.column("nope")
    # bars that are all missing: NaN everywhere except the calendar, no exception from TA-Lib
    nan = np.full(400, np.nan)
    missing = Bars(np.arange(400, dtype=np.int64) * HOUR, nan, nan, nan, nan, nan)
    values = compute(missing, "standard").values
    calendar = [KINDS[s.kind].group == "calendar" for s in parse("standard").specs]
    assert np.isnan(values[:, ~np.array(calendar)]).all()
    last = compute_last(missing, "standard")
    np.testing.assert_array_equal(last, values[-1])


def test_obv_slope_over_one_bar_is_the_signed_volume_share() -> None:
    """TA-Lib's SUM refuses a period of 1; the feature is then sign(close change) (or 0)."""
    bars = sample("AAPL_1d").bars(0, 300)
    col = compute(bars, ["obv_slope_1"]).column("obv_slope_1")
    assert np.isnan(col[0])
    expected = np.sign(np.diff(bars.close))
    assert np.array_equal(col[1:], expected)
    for i in (1, 150, 299):
        assert compute_last(bars.slice(0, i + 1), ["obv_slope_1"])[0] == col[i]
