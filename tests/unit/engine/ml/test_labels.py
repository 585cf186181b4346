"""Labels: forward returns, direction, triple barrier (vs a brute-force reference), sample weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from algotrendy.engine.ml.labels import (
    PROFIT_TAKE,
    STOP_LOSS,
    TIME,
    UNRESOLVED,
    concurrency,
    direction,
    event_ends,
    ewm_volatility,
    forward_returns,
    return_attribution_weights,
    triple_barrier,
    uniqueness_weights,
)

NAN = math.nan


def test_forward_returns_simple_and_log() -> None:
    c = np.array([100.0, 110.0, 99.0, 99.0])
    np.testing.assert_allclose(forward_returns(c, 1), [0.1, -0.1, 0.0, NAN])
    np.testing.assert_allclose(forward_returns(c, 2), [-0.01, 99 / 110 - 1, NAN, NAN])
    np.testing.assert_allclose(forward_returns(c, 1, log=True), [math.log(1.1), math.log(0.9), 0.0, NAN])
    assert np.isnan(forward_returns(c, 4)).all()
    assert np.isnan(forward_returns(c, 9)).all()
    with pytest.raises(ValueError):
        forward_returns(c, 0)


def test_direction_dead_zone() -> None:
    c = np.array([100.0, 101.0, 100.5, 100.5, 99.0, 99.0])
    # forward 1-bar returns: +1%, -0.495%, 0, -1.49%, 0, NaN
    np.testing.assert_array_equal(direction(c, 1), [1.0, 0.0, NAN, 0.0, NAN, NAN])
    np.testing.assert_array_equal(direction(c, 1, threshold=0.005), [1.0, NAN, NAN, 0.0, NAN, NAN])
    with pytest.raises(ValueError):
        direction(c, 1, threshold=-0.1)


def test_event_ends() -> None:
    np.testing.assert_array_equal(event_ends(6, 2), [2, 3, 4, 5, 5, 5])
    assert event_ends(6, 2).dtype == np.int64
    assert len(event_ends(0, 3)) == 0


def test_ewm_volatility_matches_pandas() -> None:
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    got = ewm_volatility(c, span=30, min_periods=10)
    ref = pd.Series(c).pct_change().ewm(span=30, adjust=False).std(bias=True).to_numpy()
    assert np.isnan(got[:10]).all()
    np.testing.assert_allclose(got[10:], ref[10:], rtol=1e-10)
    # point in time: changing the future does not change the past
    c2 = c.copy()
    c2[300:] *= 1.5
    np.testing.assert_array_equal(ewm_volatility(c2, span=30)[:300], ewm_volatility(c, span=30)[:300])


def test_triple_barrier_hand_example() -> None:
    c = np.array([100.0, 101.0, 103.0, 99.0, 100.0, 100.0])
    tb = triple_barrier(c, horizon=3, profit_take=1.0, stop_loss=1.0, volatility=np.full(6, 0.02))
    # 0: +1%, +3% -> profit-take at bar 2
    # 1: +1.98%, -1.98%, -0.99% -> no touch, time barrier at bar 4, ret -0.99% -> -1
    # 2: 99/103 - 1 = -3.9% -> stop-loss at bar 3
    # 3..5: time barrier past the data, nothing touched -> unresolved
    np.testing.assert_array_equal(
        tb.barrier, [PROFIT_TAKE, TIME, STOP_LOSS, UNRESOLVED, UNRESOLVED, UNRESOLVED]
    )
    np.testing.assert_array_equal(tb.t1, [2, 4, 3, -1, -1, -1])
    np.testing.assert_array_equal(tb.label, [1.0, -1.0, -1.0, NAN, NAN, NAN])
    np.testing.assert_allclose(tb.ret, [0.03, 100 / 101 - 1, 99 / 103 - 1, NAN, NAN, NAN])
    np.testing.assert_array_equal(tb.valid, [True, True, True, False, False, False])


def test_triple_barrier_high_low_touch_tie_and_short_side() -> None:
    c = np.array([100.0, 100.0, 100.0, 100.0])
    hi = np.array([100.0, 102.5, 100.0, 100.0])
    lo = np.array([100.0, 99.0, 97.0, 100.0])
    vol = np.full(4, 0.02)
    tb = triple_barrier(c, horizon=2, profit_take=1, stop_loss=1, volatility=vol, high=hi, low=lo)
    # bar 0: the high of bar 1 touches +2%; ret is the barrier level
    assert (tb.barrier[0], tb.t1[0], tb.label[0]) == (PROFIT_TAKE, 1, 1.0)
    assert tb.ret[0] == pytest.approx(0.02)
    # bar 1: bar 2's low touches -2%
    assert (tb.barrier[1], tb.t1[1]) == (STOP_LOSS, 2)
    assert tb.ret[1] == pytest.approx(-0.02)
    # the same bar hits both barriers: the stop is assumed first
    lo2 = lo.copy()
    lo2[1] = 97.0
    tb2 = triple_barrier(c, horizon=2, profit_take=1, stop_loss=1, volatility=vol, high=hi, low=lo2)
    assert (tb2.barrier[0], tb2.label[0]) == (STOP_LOSS, -1.0)
    # short side: the rise through +2% is the short's stop; labels become meta-labels (0/1)
    side = np.array([-1.0, -1.0, 0.0, 1.0])
    tb3 = triple_barrier(c, horizon=2, profit_take=1, stop_loss=1, volatility=vol, high=hi, low=lo, side=side)
    assert (tb3.barrier[0], tb3.label[0]) == (STOP_LOSS, 0.0)
    assert (tb3.barrier[1], tb3.label[1]) == (PROFIT_TAKE, 1.0)  # the drop is the short's profit
    assert tb3.barrier[2] == UNRESOLVED  # no bet
    with pytest.raises(ValueError):
        triple_barrier(c, horizon=2, profit_take=1, stop_loss=1, volatility=vol, high=hi)


def test_triple_barrier_time_only_is_forward_return_sign() -> None:
    rng = np.random.default_rng(2)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    vol = np.full(300, NAN)  # not needed when both horizontal barriers are disabled
    tb = triple_barrier(c, horizon=7, profit_take=None, stop_loss=0, volatility=vol)
    r = forward_returns(c, 7)
    np.testing.assert_array_equal(tb.valid, ~np.isnan(r))
    np.testing.assert_array_equal(tb.label[:-7], np.sign(r[:-7]))
    np.testing.assert_allclose(tb.ret[:-7], r[:-7])
    assert (tb.barrier[:-7] == TIME).all()
    np.testing.assert_array_equal(tb.t1[:-7], np.arange(293) + 7)


def _reference(c, hi, lo, vol, side, horizon, pt, sl, use_hl):  # type: ignore[no-untyped-def]
    """Direct transcription of the definition, one event at a time."""
    n = len(c)
    out = []
    for i in range(n):
        s = side[i]
        if not np.isfinite(s) or s == 0 or not (np.isfinite(vol[i]) and vol[i] > 0):
            out.append((NAN, NAN, -1, UNRESOLVED))
            continue
        s = float(np.sign(s))
        up, dn = pt * vol[i], -sl * vol[i]
        hit = None
        for t in range(i + 1, min(i + horizon, n - 1) + 1):
            path = [hi[t] / c[i] - 1, lo[t] / c[i] - 1]
            best, worst = max(s * p for p in path), min(s * p for p in path)
            if worst <= dn:
                hit = (dn if use_hl else worst, t, STOP_LOSS)
                break
            if best >= up:
                hit = (up if use_hl else best, t, PROFIT_TAKE)
                break
        if hit is None and i + horizon <= n - 1:
            hit = (s * (c[i + horizon] / c[i] - 1), i + horizon, TIME)
        if hit is None:
            out.append((NAN, NAN, -1, UNRESOLVED))
        else:
            out.append((float(np.sign(hit[0])), hit[0], hit[1], hit[2]))
    return out


@pytest.mark.parametrize("use_hl", [False, True])
@pytest.mark.parametrize("with_side", [False, True])
def test_triple_barrier_matches_brute_force(use_hl: bool, with_side: bool) -> None:
    rng = np.random.default_rng(3)
    n = 400
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    hi = c * (1 + np.abs(rng.normal(0, 0.006, n)))
    lo = c * (1 - np.abs(rng.normal(0, 0.006, n)))
    vol = ewm_volatility(c, span=20, min_periods=5)
    side = rng.choice([-1.0, 1.0, 0.0], n) if with_side else np.ones(n)
    tb = triple_barrier(
        c,
        horizon=8,
        profit_take=1.5,
        stop_loss=1.0,
        volatility=vol,
        side=side if with_side else None,
        high=hi if use_hl else None,
        low=lo if use_hl else None,
    )
    ref = _reference(c, hi if use_hl else c, lo if use_hl else c, vol, side, 8, 1.5, 1.0, use_hl)
    label, ret, t1, barrier = (np.array(x) for x in zip(*ref, strict=True))
    if with_side:
        label = np.where(np.isnan(label), NAN, (label > 0).astype(float))
    np.testing.assert_array_equal(tb.barrier, barrier)
    np.testing.assert_array_equal(tb.t1, t1)
    np.testing.assert_array_equal(tb.label, label)
    np.testing.assert_allclose(tb.ret, ret, rtol=1e-12)
    v = tb.valid
    assert set(np.unique(barrier[v]).tolist()) == {PROFIT_TAKE, STOP_LOSS, TIME}
    span = tb.t1[v] - np.flatnonzero(v)
    assert span.min() >= 1
    assert span.max() <= 8


def test_triple_barrier_input_checks() -> None:
    c = np.ones(5)
    with pytest.raises(ValueError):
        triple_barrier(c, horizon=2, profit_take=-1, stop_loss=1, volatility=np.ones(5))
    with pytest.raises(ValueError):
        triple_barrier(c, horizon=2, profit_take=1, stop_loss=1, volatility=np.ones(4))
    with pytest.raises(ValueError):
        triple_barrier(c, horizon=0, profit_take=1, stop_loss=1)


def test_uniqueness_hand_example() -> None:
    t0 = np.array([0, 1, 4])
    t1 = np.array([2, 3, 4])
    np.testing.assert_array_equal(concurrency(t0, t1, 6), [1, 2, 2, 1, 1, 0])
    # label 0 covers bars 0..2 with concurrency 1, 2, 2 -> (1 + 1/2 + 1/2) / 3
    np.testing.assert_allclose(uniqueness_weights(t0, t1, 6), [2 / 3, 2 / 3, 1.0])
    # k identical spans: 1/k each
    np.testing.assert_allclose(uniqueness_weights(np.zeros(4, int), np.full(4, 3), 4), [0.25] * 4)


def test_uniqueness_and_return_attribution_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    n_bars = 200
    t0 = np.sort(rng.integers(0, n_bars, 120))
    t1 = np.minimum(t0 + rng.integers(0, 15, 120), n_bars - 1)
    c = np.array([sum((a <= t <= b) for a, b in zip(t0, t1, strict=True)) for t in range(n_bars)])
    np.testing.assert_array_equal(concurrency(t0, t1, n_bars), c)
    u_ref = [np.mean([1 / c[t] for t in range(a, b + 1)]) for a, b in zip(t0, t1, strict=True)]
    u = uniqueness_weights(t0, t1, n_bars)
    np.testing.assert_allclose(u, u_ref, rtol=1e-12)
    assert ((u > 0) & (u <= 1)).all()

    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
    r = np.diff(np.log(close), prepend=np.log(close[0]))
    w_ref = np.array(
        [abs(sum(r[t] / c[t] for t in range(a + 1, b + 1))) for a, b in zip(t0, t1, strict=True)]
    )
    w_ref *= len(w_ref) / w_ref.sum()
    np.testing.assert_allclose(return_attribution_weights(t0, t1, close), w_ref, rtol=1e-10)


def test_span_checks() -> None:
    with pytest.raises(ValueError):
        uniqueness_weights(np.array([0, 3]), np.array([2, 2]), 5)  # t1 < t0
    with pytest.raises(ValueError):
        uniqueness_weights(np.array([0]), np.array([5]), 5)  # past the end
    with pytest.raises(ValueError):
        uniqueness_weights(np.array([0.0]), np.array([1.0]), 5)  # not indices
