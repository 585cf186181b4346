"""Chart styles: hand-worked examples for each style, parameter validation, the registry,
and properties that must hold on any input (hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.core.market import Bars
from algotrendy.indicators.charts import (
    CHART_STYLES,
    ChartBars,
    apply_chart_style,
    chart_style,
    dollar_bars,
    heikin_ashi,
    kagi,
    point_figure,
    range_bars,
    renko,
    three_line_break,
    time_bars,
    volume_bars,
)

MIN = 60 * 10**9
Row = tuple[int, float, float, float, float, float]


def series(closes: Sequence[float], volumes: Sequence[float] | None = None) -> Bars:
    """Bars on the given closes: open = previous close, no wicks, bar i at minute i."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.concatenate((c[:1], c[:-1]))
    v = np.ones(len(c)) if volumes is None else np.asarray(volumes, dtype=np.float64)
    return Bars(np.arange(len(c), dtype=np.int64) * MIN, o, np.maximum(o, c), np.minimum(o, c), c, v)


def rows(out: ChartBars) -> list[Row]:
    """(source index, open, high, low, close, volume) per derived bar, rounded for comparison."""
    idx = out.columns["source_index"]
    assert np.array_equal(out.ts, idx * MIN)  # ts is the completing source bar's ts
    r = [[round(float(x), 9) for x in col] for col in (out.open, out.high, out.low, out.close, out.volume)]
    return [(int(i), *vals) for i, *vals in zip(idx, *r, strict=True)]


# closes used by several examples, volumes 1..7 so the apportioning shows
A = [10, 11, 12.5, 11.2, 9.4, 9.9, 13.1]
AV = [1, 2, 3, 4, 5, 6, 7]


# ---------------------------------------------------------------- hand-worked examples


def test_time_is_the_identity() -> None:
    src = series(A, AV)
    out = time_bars(src)
    assert np.array_equal(out.close, src.close) and np.array_equal(out.ts, src.ts)
    assert out.columns["source_index"].tolist() == list(range(7))


def test_heikin_ashi_hand_worked() -> None:
    src = Bars(
        np.arange(3, dtype=np.int64) * MIN,
        np.array([10.0, 11, 13]),
        np.array([12.0, 14, 13.5]),
        np.array([9.0, 10, 8]),
        np.array([11.0, 13, 9]),
        np.array([1.0, 2, 3]),
    )
    out = heikin_ashi(src)
    # bar0: c=(10+12+9+11)/4=10.5  o=(10+11)/2=10.5     h=max(12,10.5,10.5)=12   l=min(9,..)=9
    # bar1: c=(11+14+10+13)/4=12   o=(10.5+10.5)/2=10.5 h=max(14,10.5,12)=14     l=min(10,10.5,12)=10
    # bar2: c=(13+13.5+8+9)/4=10.875 o=(10.5+12)/2=11.25 h=max(13.5,11.25,10.875)=13.5 l=8
    assert rows(out) == [(0, 10.5, 12, 9, 10.5, 1), (1, 10.5, 14, 10, 12, 2), (2, 11.25, 13.5, 8, 10.875, 3)]


def test_renko_fixed_brick_hand_worked() -> None:
    out = renko(series(A, AV), brick=1.0)
    # grid 10 + k: 11 reaches level 11 -> brick 10-11 (vol 1+2). 12.5 -> 11-12 (vol 3).
    # 11.2: needs >=13 or <=10, nothing (vol 4 waits). 9.4 <= 10 -> down brick 11-10 (vol 4+5).
    # 9.9: needs >=12 or <=9, nothing. 13.1 >= 12 -> two up bricks 11-12, 12-13 from one source
    # bar: they share its ts and split its accumulated volume 6+7=13 -> 6.5 each.
    assert rows(out) == [
        (1, 10, 11, 10, 11, 3),
        (2, 11, 12, 11, 12, 3),
        (4, 11, 11, 10, 10, 9),
        (6, 11, 12, 11, 12, 6.5),
        (6, 12, 13, 12, 13, 6.5),
    ]
    assert out.columns["direction"].tolist() == [1, 1, -1, 1, 1]


def test_renko_atr_brick_is_the_atr_at_the_last_bar() -> None:
    rng = np.random.default_rng(7)
    src = series(list(100 + rng.normal(size=200).cumsum()))
    expected = float(talib.ATR(src.high, src.low, src.close, timeperiod=14)[-1])
    out = renko(src, brick="atr", atr_period=14)
    assert len(out) > 5
    np.testing.assert_allclose(np.abs(out.close - out.open), expected, rtol=1e-9)
    with pytest.raises(ValueError, match="atr_period=14"):
        renko(series([1, 2, 3]), brick="atr")


def test_range_bars_hand_worked() -> None:
    out = range_bars(series(A, AV), size=1.0)
    # bar opens at 10. 11: range 10..11 = 1 -> up bar 10/11/10/11 (vol 1+2); next opens at 11.
    # 12.5: 11..12.5 > 1 -> up bar closes at low+1 = 12 (vol 3); next opens at 12, seen 12..12.5.
    # 11.2: 11.2..12.5 = 1.3 -> down bar o12 h12.5 l11.5 c11.5 (vol 4); next opens 11.5, sees 11.2.
    # 9.4: two down bars 11.5->10.5 and 10.5->9.5 (vol 5 split 2.5/2.5); next opens 9.5, sees 9.4.
    # 9.9: 9.4..9.9, nothing (vol 6 waits). 13.1: three up bars 9.5->10.4 (low 9.4, high 10.4),
    # 10.4->11.4, 11.4->12.4, splitting 6+7=13 in thirds.
    assert rows(out) == [
        (1, 10, 11, 10, 11, 3),
        (2, 11, 12, 11, 12, 3),
        (3, 12, 12.5, 11.5, 11.5, 4),
        (4, 11.5, 11.5, 10.5, 10.5, 2.5),
        (4, 10.5, 10.5, 9.5, 9.5, 2.5),
        (6, 9.5, 10.4, 9.4, 10.4, round(13 / 3, 9)),
        (6, 10.4, 11.4, 10.4, 11.4, round(13 / 3, 9)),
        (6, 11.4, 12.4, 11.4, 12.4, round(13 / 3, 9)),
    ]
    assert out.columns["direction"].tolist() == [1, 1, -1, -1, -1, 1, 1, 1]


def test_three_line_break_hand_worked() -> None:
    out = three_line_break(series(A, AV), lines=3)
    # 11 != 10 -> first line 10->11 (vol 1+2). 12.5 > 11 -> 11->12.5 (vol 3).
    # 11.2: not above 12.5, not below the lowest of the last lines (10): nothing (vol 4 waits).
    # 9.4 < 10 -> reversal from the last line's open: 11->9.4 (vol 4+5).
    # 9.9: not below 9.4, not above the highest of the last 3 lines (12.5): nothing.
    # 13.1 > 12.5 -> reversal 11->13.1 (vol 6+7).
    assert rows(out) == [
        (1, 10, 11, 10, 11, 3),
        (2, 11, 12.5, 11, 12.5, 3),
        (4, 11, 11, 9.4, 9.4, 9),
        (6, 11, 13.1, 11, 13.1, 13),
    ]
    assert out.columns["direction"].tolist() == [1, 1, -1, 1]


def test_line_break_reversal_must_break_the_last_n_lines() -> None:
    closes = [10, 11, 12, 13, 11.5, 10.5, 9.5]
    # three white lines 10-11, 11-12, 12-13. With lines=3 a black line needs a close below 10
    # (the low of the last three): only 9.5 does it, drawn from 12 (last line's open).
    three = three_line_break(series(closes), lines=3)
    assert [(r[0], r[1], r[4]) for r in rows(three)] == [(1, 10, 11), (2, 11, 12), (3, 12, 13), (6, 12, 9.5)]
    assert three.volume.tolist() == [2, 1, 1, 3]
    # with lines=1 breaking the last line's low (12) is enough: 11.5, then 10.5, 9.5 continue
    one = three_line_break(series(closes), lines=1)
    assert [(r[0], r[1], r[4]) for r in rows(one)] == [
        (1, 10, 11),
        (2, 11, 12),
        (3, 12, 13),
        (4, 12, 11.5),
        (5, 11.5, 10.5),
        (6, 10.5, 9.5),
    ]


def test_kagi_fixed_reversal_hand_worked_with_yang_and_yin() -> None:
    closes = [10, 12, 11, 13, 10, 11, 9, 10.5, 14, 12.5]
    out = kagi(series(closes), reversal=1.0, method="fixed")
    # 12: up 2 >= 1 from 10 -> an up (yang) line starts. 11: back 1 from 12 -> line 10->12 done.
    # 13: up 2 from 11 -> line 12->11 done (no earlier waist: stays yang).
    # 10: down 3 from 13 -> line 11->13 done (13 > shoulder 12: yang).
    # 11: up 1 from 10 -> line 13->10 done; 10 < waist 11: turns yin.
    # 9: down 2 from 11 -> line 10->11 done; 11 < shoulder 13: stays yin.
    # 10.5: up 1.5 from 9 -> line 11->9 done (9 < waist 10: yin).
    # 14 extends; 12.5: down 1.5 from 14 -> line 9->14 done; 14 > shoulder 11: yang again.
    # volume: the first line gets bars 0..2, the last bars 8..9, the others one bar each.
    assert [(r[0], r[1], r[4], r[5]) for r in rows(out)] == [
        (2, 10, 12, 3),
        (3, 12, 11, 1),
        (4, 11, 13, 1),
        (5, 13, 10, 1),
        (6, 10, 11, 1),
        (7, 11, 9, 1),
        (9, 9, 14, 2),
    ]
    assert out.columns["direction"].tolist() == [1, -1, 1, -1, 1, -1, 1]
    assert out.columns["yang"].tolist() == [True, True, True, False, False, False, True]


def test_kagi_percent_reversal_is_relative_to_the_extreme() -> None:
    closes = [100, 104, 108, 103, 99]
    # 4 %: 104 is 4 above 100 (4 % of 100) -> up; 108 extends; 103 is 5 below 108 >= 4.32 -> done
    assert [(r[0], r[1], r[4]) for r in rows(kagi(series(closes), reversal=4.0))] == [(3, 100, 108)]
    # 5 %: 104 is not enough, 108 is (8 >= 5); 103 is 5 < 5.4 below 108; 99 (9 below) ends it
    assert [(r[0], r[1], r[4]) for r in rows(kagi(series(closes), reversal=5.0))] == [(4, 100, 108)]


def test_point_figure_hand_worked() -> None:
    closes = [10, 11.2, 12.7, 13.1, 11.5, 10.9, 9.9, 12.3, 13.05, 14.2]
    out = point_figure(series(closes), box=1.0, reversal=3)
    # grid 10 + k. 11.2 reaches 11: an X column starts; 12.7 -> 12; 13.1 -> 13.
    # 11.5, 10.9: not 3 boxes below 13 (<= 10). 9.9 <= 10: X column 10->13 done (3 boxes,
    # bars 0..6 -> vol 7), an O column from 13 down to 10 starts.
    # 12.3: not 3 boxes above 10 (>= 13). 13.05 >= 13: O column 13->10 done (bars 7,8 -> vol 2).
    # 14.2 extends the new X column, which is still forming and not returned.
    assert rows(out) == [(6, 10, 13, 10, 13, 7), (8, 13, 13, 10, 10, 2)]
    assert out.columns["direction"].tolist() == [1, -1]
    assert out.columns["boxes"].tolist() == [3, 3]


def test_volume_bars_hand_worked() -> None:
    src = Bars(
        np.arange(8, dtype=np.int64) * MIN,
        np.array([10.0, 11, 12, 13, 14, 15, 16, 17]),
        np.array([11.0, 12, 13, 14, 15, 16, 17, 18]),
        np.array([9.0, 10, 11, 12, 13, 14, 15, 16]),
        np.array([10.5, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5]),
        np.array([2.0, 2, 2, 6, 1, 1, 3, 1]),
    )
    out = volume_bars(src, threshold=5)
    # cumulative volume 2,4,6,12,13,14,17,18 passes 5 at bar 2, 10 at bar 3, 15 at bar 6;
    # bar 7 (cumulative 18) is still filling. Whole source bars are aggregated:
    # [0..2] o10 h13 l9 c12.5 v6 | [3] o13 h14 l12 c13.5 v6 | [4..6] o14 h17 l13 c16.5 v5
    assert rows(out) == [(2, 10, 13, 9, 12.5, 6), (3, 13, 14, 12, 13.5, 6), (6, 14, 17, 13, 16.5, 5)]
    assert out.columns["first_index"].tolist() == [0, 3, 4]
    # one source bar passing two multiples (4 -> 16 passes 5, 10 and 15) makes one bar, not empty ones
    assert rows(volume_bars(series([1, 2, 3, 4], [2, 2, 12, 1]), threshold=5)) == [(2, 1, 3, 1, 3, 16)]


def test_dollar_bars_hand_worked() -> None:
    out = dollar_bars(series([10, 20, 10, 5], [1, 1, 2, 2]), threshold=25)
    # value close*volume: 10, 20, 20, 10 -> cumulative 10, 30, 50, 60 passes 25 at bar 1, 50 at
    # bar 2; bar 3 is still filling. Volume is the share volume, ``value`` the traded value.
    assert rows(out) == [(1, 10, 20, 10, 20, 2), (2, 20, 20, 10, 10, 2)]
    assert out.columns["value"].tolist() == [30, 20]


# ---------------------------------------------------------------- validation and registry


@pytest.mark.parametrize(
    ("style", "params", "words"),
    [
        ("renko", {"brick": 0}, ["brick", "> 0", "'atr'"]),
        ("renko", {"brick": "big"}, ["brick", "'atr'"]),
        ("renko", {"brick": 1.0, "atr_period": 0}, ["atr_period", ">= 1"]),
        ("renko", {"brick": 1.0, "atr_period": 2.5}, ["atr_period", "integer"]),
        ("range", {"size": -1}, ["size", "> 0"]),
        ("three_line_break", {"lines": 0}, ["lines", ">= 1", "<= 20"]),
        ("three_line_break", {"lines": True}, ["lines"]),
        ("kagi", {"method": "log"}, ["method", "'percent'", "'fixed'"]),
        ("kagi", {"reversal": 150}, ["reversal", "< 100"]),
        ("kagi", {"reversal": float("nan")}, ["reversal"]),
        ("point_figure", {"box": 1.0, "reversal": 0}, ["reversal", ">= 1"]),
        ("volume", {}, ["threshold", "requires"]),
        ("dollar", {"threshold": 0}, ["threshold", "> 0"]),
        ("heikin_ashi", {"period": 3}, ["period", "unknown"]),
        ("renko", {"bricks": 1}, ["bricks", "allowed: brick, atr_period"]),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(
    style: str, params: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ValueError) as err:
        apply_chart_style(series(A), style, params)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_direct_calls_validate_too() -> None:
    with pytest.raises(ValueError, match="brick"):
        renko(series(A), brick=-2)
    with pytest.raises(ValueError, match="threshold"):
        volume_bars(series(A), threshold=float("inf"))


def test_registry_lists_every_style_with_json_friendly_specs() -> None:
    assert set(CHART_STYLES) == {
        "time",
        "heikin_ashi",
        "renko",
        "range",
        "three_line_break",
        "kagi",
        "point_figure",
        "volume",
        "dollar",
    }
    listing = json.loads(json.dumps([s.describe() for s in CHART_STYLES.values()]))
    renko_spec = next(s for s in listing if s["name"] == "renko")
    assert [p["name"] for p in renko_spec["params"]] == ["brick", "atr_period"]
    assert renko_spec["params"][0]["default"] == "atr" and renko_spec["params"][1]["default"] == 14
    assert "direction" in renko_spec["columns"]
    assert chart_style("kagi").validate({}) == {"reversal": 4.0, "method": "percent"}
    assert chart_style("renko").validate({"brick": 2}) == {"brick": 2.0, "atr_period": 14}
    with pytest.raises(ValueError, match="chart_style must be one of time, heikin_ashi"):
        chart_style("candles")


def test_every_style_returns_its_documented_columns_even_when_empty() -> None:
    params: dict[str, dict[str, object]] = {
        "renko": {"brick": 1.0},
        "range": {"size": 1.0},
        "point_figure": {"box": 1.0},
        "volume": {"threshold": 1.0},
        "dollar": {"threshold": 1.0},
    }
    for name, style in CHART_STYLES.items():
        for src in (Bars.empty(), series(A, AV)):
            out = style.apply(src, params.get(name, {}))
            assert set(out.columns) == set(style.columns), name


def test_non_finite_closes_and_tiny_bricks_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite close"):
        renko(series([1.0, float("nan"), 2.0]), brick=1.0)
    with pytest.raises(ValueError, match="brick=1e-09 is too small"):
        renko(series([1.0, 2.0, 1.0, 2.0]), brick=1e-9)
    with pytest.raises(ValueError, match="negative"):
        volume_bars(series([1.0, 2.0], [1.0, -1.0]), threshold=1)


# ---------------------------------------------------------------- properties


@st.composite
def walks(draw: st.DrawFn) -> Bars:
    n = draw(st.integers(2, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vol = draw(st.sampled_from([1e-5, 1e-3, 0.03]))
    close = 1000.0 * np.exp(rng.normal(0, vol, n).cumsum())
    if draw(st.booleans()):
        close = np.round(close, 2)  # ticks: exact hits on levels happen
    scale = close * vol
    o = np.concatenate((close[:1], close[:-1])) + rng.normal(0, 1, n) * scale / 4
    h = np.maximum(o, close) + rng.random(n) * scale
    lo = np.minimum(o, close) - rng.random(n) * scale
    v = np.where(rng.random(n) < 0.1, 0.0, rng.gamma(2.0, 3.0, n))
    return Bars(np.arange(n, dtype=np.int64) * MIN, o, h, lo, close, v)


def _size(src: Bars, fraction: float) -> float:
    spread = float(src.close.max() - src.close.min())
    return max(spread * fraction, 1e-6)


def _check_common(src: Bars, out: ChartBars, *, conserve_volume: bool = True) -> None:
    tol = 1e-9 * max(1.0, float(np.abs(src.close).max()))
    for col in (out.open, out.high, out.low, out.close):  # no invented prices
        assert (col >= src.low.min() - tol).all() and (col <= src.high.max() + tol).all()
    assert (out.high >= np.maximum(out.open, out.close) - tol).all()
    assert (out.low <= np.minimum(out.open, out.close) + tol).all()
    idx = out.columns["source_index"]
    assert (np.diff(idx) >= 0).all() and np.array_equal(out.ts, src.ts[idx])
    if conserve_volume and len(out):
        assert out.volume.sum() == pytest.approx(src.volume[: idx[-1] + 1].sum(), rel=1e-9, abs=1e-9)
    assert (out.volume >= 0).all()


@settings(max_examples=80, deadline=None)
@given(src=walks(), fraction=st.sampled_from([0.02, 0.1, 0.3]))
def test_renko_bricks_are_exactly_brick_sized_on_the_grid(src: Bars, fraction: float) -> None:
    brick = _size(src, fraction)
    out = renko(src, brick=brick)
    _check_common(src, out)
    np.testing.assert_allclose(np.abs(out.close - out.open), brick, rtol=1e-6)
    steps = (out.open - src.close[0]) / brick
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    # bricks chain: each starts where the last ended (same direction) or at its open (reversal)
    d = out.columns["direction"]
    for i in range(1, len(out)):
        expected = out.close[i - 1] if d[i] == d[i - 1] else out.open[i - 1]
        assert out.open[i] == pytest.approx(expected, rel=1e-12)


@settings(max_examples=80, deadline=None)
@given(src=walks(), fraction=st.sampled_from([0.02, 0.1, 0.3]))
def test_range_bars_span_exactly_the_range(src: Bars, fraction: float) -> None:
    size = _size(src, fraction)
    out = range_bars(src, size=size)
    _check_common(src, out)
    np.testing.assert_allclose(out.high - out.low, size, rtol=1e-6)
    assert np.allclose(out.open[1:], out.close[:-1], rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(src=walks(), lines=st.integers(1, 5))
def test_line_break_lines_connect(src: Bars, lines: int) -> None:
    out = three_line_break(src, lines=lines)
    _check_common(src, out)
    assert (np.diff(out.columns["source_index"]) > 0).all()  # at most one line per source bar
    d = out.columns["direction"]
    for i in range(1, len(out)):
        assert out.open[i] == (out.close[i - 1] if d[i] == d[i - 1] else out.open[i - 1])


@settings(max_examples=80, deadline=None)
@given(src=walks(), reversal=st.sampled_from([0.5, 2.0, 5.0]), method=st.sampled_from(["percent", "fixed"]))
def test_kagi_lines_alternate_and_connect(src: Bars, reversal: float, method: str) -> None:
    amount = reversal / 100 if method == "percent" else _size(src, reversal / 20)
    out = kagi(src, reversal=reversal if method == "percent" else amount, method=method)
    _check_common(src, out)
    d = out.columns["direction"]
    assert (d[1:] == -d[:-1]).all()
    assert np.array_equal(out.open[1:], out.close[:-1])
    assert ((out.close - out.open) * d > 0).all()


@settings(max_examples=80, deadline=None)
@given(src=walks(), fraction=st.sampled_from([0.02, 0.1]), reversal=st.integers(1, 4))
def test_point_figure_columns_are_whole_boxes(src: Bars, fraction: float, reversal: int) -> None:
    box = _size(src, fraction)
    out = point_figure(src, box=box, reversal=reversal)
    _check_common(src, out)
    boxes = out.columns["boxes"]
    np.testing.assert_allclose(np.abs(out.close - out.open), boxes * box, rtol=1e-6)
    assert (boxes[1:] >= reversal).all() and (boxes >= 1).all()
    d = out.columns["direction"]
    assert (d[1:] == -d[:-1]).all()
    assert np.array_equal(out.open[1:], out.close[:-1])


@settings(max_examples=80, deadline=None)
@given(src=walks(), per_bar=st.sampled_from([1.5, 4.0, 20.0]))
def test_volume_bars_sum_to_the_total_and_close_on_each_threshold(src: Bars, per_bar: float) -> None:
    threshold = per_bar * max(float(src.volume.mean()), 1e-3)
    out = volume_bars(src, threshold=threshold)
    _check_common(src, out)
    ends = out.columns["source_index"]
    if len(out):
        # all the volume up to the last completed bar is in the bars, and what follows is less
        # than one threshold past the last multiple reached
        cum = np.cumsum(src.volume)
        levels = np.floor(cum[ends] / threshold + 1e-9)
        assert (np.diff(levels) >= 1).all() and levels[0] >= 1
        assert np.floor(cum[-1] / threshold + 1e-9) == levels[-1]
        assert np.array_equal(out.columns["first_index"][1:], ends[:-1] + 1)
    else:
        assert src.volume.sum() < threshold * (1 + 1e-9)


@settings(max_examples=50, deadline=None)
@given(src=walks())
def test_heikin_ashi_and_dollar_bars_stay_in_range(src: Bars) -> None:
    ha = heikin_ashi(src)
    _check_common(src, ha)
    assert np.array_equal(ha.volume, src.volume)
    total_value = float((src.close * src.volume).sum())
    if total_value > 0:
        threshold = total_value / 7
        dollars = dollar_bars(src, threshold=threshold)
        _check_common(src, dollars)
        assert 1 <= len(dollars) <= 7
        cum = np.cumsum(src.close * src.volume)
        last = dollars.columns["source_index"][-1]
        assert dollars.columns["value"].sum() == pytest.approx(cum[last], rel=1e-9)
        assert np.floor(cum[-1] / threshold + 1e-9) == np.floor(cum[last] / threshold + 1e-9)


def test_a_range_below_float_resolution_is_refused_not_looped_on() -> None:
    # at 1e9 one ulp is ~1.2e-7: adding 1e-8 to the low changes nothing
    src = series([1e9, 1e9 + 2.384185791015625e-07])
    with pytest.raises(ValueError, match="size=1e-08 is too small"):
        range_bars(src, size=1e-8)
