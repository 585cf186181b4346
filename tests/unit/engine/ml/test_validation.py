"""Purged k-fold / walk-forward: checked against the purge and embargo definitions by brute force."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algotrendy.engine.ml.validation import (
    PurgedKFold,
    cross_val_predict_proba,
    embargo_bars,
    oos_scores,
    purged_kfold,
    purged_walk_forward,
)


def _random_spans(seed: int, n: int = 150, max_len: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t0 = np.cumsum(rng.integers(0, 3, n))  # sorted, with ties and gaps
    t1 = t0 + rng.integers(0, max_len, n)
    return t0, t1


def _overlap(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 <= b1 and b0 <= a1


def test_hand_example_kfold() -> None:
    t0 = np.arange(10)
    t1 = np.minimum(t0 + 2, 9)  # [2, 3, 4, 5, 6, 7, 8, 9, 9, 9]
    folds = list(purged_kfold(t0, t1, n_splits=5, embargo=1))
    expected = [
        ([5, 6, 7, 8, 9], [0, 1]),  # test bars 0..3; after: t0 > 3 + 1
        ([7, 8, 9], [2, 3]),  # test bars 2..5; before: t1 < 2 (none); after: t0 > 6
        ([0, 1, 9], [4, 5]),  # test bars 4..7; before: t1 < 4; after: t0 > 8
        ([0, 1, 2, 3], [6, 7]),  # test bars 6..9
        ([0, 1, 2, 3, 4, 5], [8, 9]),
    ]
    for (train, test), (e_train, e_test) in zip(folds, expected, strict=True):
        assert train.tolist() == e_train
        assert test.tolist() == e_test


def test_hand_example_walk_forward() -> None:
    t0 = np.arange(10)
    t1 = np.minimum(t0 + 2, 9)
    folds = list(purged_walk_forward(t0, t1, n_splits=2, min_train=4, embargo=1))
    # test [4, 5, 6] (bars 4..8): train t1 < 4 - 1 -> [0]; test [7, 8, 9]: t1 < 6 -> [0..3]
    assert [(tr.tolist(), te.tolist()) for tr, te in folds] == [([0], [4, 5, 6]), ([0, 1, 2, 3], [7, 8, 9])]
    rolled = list(purged_walk_forward(t0, t1, n_splits=2, min_train=4, rolling=True))
    assert [tr.tolist() for tr, _ in rolled] == [[0, 1], [3, 4]]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("embargo", [0, 7, 0.05])
def test_kfold_against_definition(seed: int, embargo: float) -> None:
    t0, t1 = _random_spans(seed)
    n = len(t0)
    h = embargo_bars(embargo, t0, t1)
    seen = []
    for train, test in PurgedKFold(4, embargo).split_spans(t0, t1):
        seen.extend(test.tolist())
        assert np.all(np.diff(test) == 1)  # contiguous block, in order
        assert not set(train.tolist()) & set(test.tolist())
        # no train span overlaps any test span
        for j in train:
            for k in test:
                assert not _overlap(t0[j], t1[j], t0[k], t1[k])
        # train is exactly: everything not overlapping a test span and not in the embargo window
        last = max(t1[k] for k in test)
        expected = [
            j
            for j in range(n)
            if j not in set(test.tolist())
            and not any(_overlap(t0[j], t1[j], t0[k], t1[k]) for k in test)
            and not (last < t0[j] <= last + h)
        ]
        assert train.tolist() == expected
    assert seen == list(range(n))  # test folds partition the samples, in time order


def test_embargo_removes_exactly_the_stated_samples() -> None:
    t0 = np.arange(100)
    t1 = t0 + 4
    (_, _), (train0, test1), *_ = purged_kfold(t0, t1, n_splits=5, embargo=0)
    (_, _), (train7, test7), *_ = purged_kfold(t0, t1, n_splits=5, embargo=7)
    assert test1.tolist() == test7.tolist() == list(range(20, 40))
    # test bars 20..43: purged before are 16..19 (t1 >= 20), after are 40..43 (t0 <= 43)
    assert sorted(set(range(100)) - set(train0.tolist())) == list(range(16, 44))
    # the embargo of 7 bars also drops samples starting at bars 44..50
    assert sorted(set(train0.tolist()) - set(train7.tolist())) == list(range(44, 51))
    # a fraction is of the bars covered (0..103 -> 104 bars), rounded down
    assert embargo_bars(0.05, t0, t1) == 5
    assert embargo_bars(0.0, t0, t1) == 0
    for bad in (-1, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            embargo_bars(bad, t0, t1)
    with pytest.raises(TypeError):
        embargo_bars(True, t0, t1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rolling", [False, True])
def test_walk_forward_against_definition(seed: int, rolling: bool) -> None:
    t0, t1 = _random_spans(seed)
    n = len(t0)
    min_train, h = 40, 5
    folds = list(purged_walk_forward(t0, t1, 4, min_train, h, rolling=rolling))
    assert len(folds) == 4
    assert np.concatenate([te for _, te in folds]).tolist() == list(range(min_train, n))
    for train, test in folds:
        first = int(test[0])
        assert np.all(train < first)
        assert np.all(t1[train] < t0[first] - h)  # settled before the test, with the gap
        lo = first - min_train if rolling else 0
        expected = [j for j in range(lo, first) if t1[j] < t0[first] - h]
        assert train.tolist() == expected
        for j in train:
            for k in test:
                assert not _overlap(t0[j], t1[j], t0[k], t1[k])


def test_sklearn_compatible() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + rng.normal(0, 0.5, 120) > 0).astype(int)
    t0 = np.arange(120)
    t1 = np.minimum(t0 + 3, 119)
    cv = PurgedKFold(4, 2, t0=t0, t1=t1)
    assert cv.get_n_splits() == 4
    scores = cross_val_score(LogisticRegression(), X, y, cv=cv)
    assert len(scores) == 4
    # without spans: one-bar labels, i.e. sklearn's unshuffled KFold (no embargo)
    ours = [te.tolist() for _, te in PurgedKFold(4).split(X)]
    theirs = [te.tolist() for _, te in KFold(4).split(X)]
    assert ours == theirs
    with pytest.raises(ValueError):
        list(cv.split(X[:100]))
    with pytest.raises(ValueError):
        PurgedKFold(1)
    with pytest.raises(ValueError):
        PurgedKFold(3, t0=t0)


def test_span_validation() -> None:
    with pytest.raises(ValueError):
        list(purged_kfold(np.array([0, 2, 1]), np.array([0, 2, 1]), 2))  # not sorted by t0
    with pytest.raises(ValueError):
        list(purged_kfold(np.array([0, 1, 2]), np.array([0, 0, 2]), 2))  # t1 < t0
    with pytest.raises(ValueError):
        list(purged_kfold(np.arange(3), np.arange(3), 4))  # more folds than samples
    with pytest.raises(ValueError):
        list(purged_walk_forward(np.arange(10), np.arange(10), 5, 8))


class _MeanModel:
    """Predicts the weighted share of the positive class seen in training."""

    classes_: Any

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _MeanModel:
        self.classes_ = np.unique(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
        self.p = float(np.sum(w * (y == self.classes_[1])) / np.sum(w))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.tile([1 - self.p, self.p], (len(X), 1))


def test_cross_val_predict_proba() -> None:
    y = np.array([-1, 1, 1, -1, 1, 1, -1, 1])
    X = np.zeros((8, 1))
    t = np.arange(8)
    splits = list(purged_walk_forward(t, t, 2, 4))  # test [4, 5], [6, 7]
    p = cross_val_predict_proba(_MeanModel, X, y, splits)
    np.testing.assert_allclose(p, [np.nan] * 4 + [0.5, 0.5, 4 / 6, 4 / 6])  # never tested -> NaN
    w = np.array([1, 1, 1, 3, 1, 1, 1, 1.0])
    pw = cross_val_predict_proba(_MeanModel, X, y, splits, sample_weight=w)
    np.testing.assert_allclose(pw[4:], [2 / 6, 2 / 6, 4 / 8, 4 / 8])
    pk = cross_val_predict_proba(_MeanModel, X, y, PurgedKFold(2))
    assert not np.isnan(pk).any()
    with pytest.raises(ValueError):
        cross_val_predict_proba(_MeanModel, X, np.arange(8), splits)  # not binary


def test_oos_scores() -> None:
    from sklearn import metrics

    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.8, 0.4, np.nan, 0.2])
    s = oos_scores(y, p)
    m = ~np.isnan(p)
    assert s["n"] == 5
    assert s["auc"] == pytest.approx(metrics.roc_auc_score(y[m], p[m]))
    assert s["auc"] == pytest.approx(5 / 6)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert s["brier"] == pytest.approx(np.mean((p[m] - y[m]) ** 2))
    assert s["log_loss"] == pytest.approx(metrics.log_loss(y[m], p[m]))
    assert oos_scores(np.array([-1, 1]), np.array([0.2, 0.9]))["auc"] == 1.0
