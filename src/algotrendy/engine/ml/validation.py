"""Cross-validation for overlapping financial labels: purged k-fold and purged walk-forward.

Why: a label made at bar ``t0`` that is settled at bar ``t1`` overlaps its neighbours' labels, and
its features overlap theirs too. Shuffled k-fold puts those neighbours on both sides of the split,
so the model is graded on labels it has practically seen: on a pure random walk it scores an
out-of-sample AUC well above 0.5 (see ``tests/golden/test_ml_canaries.py``). sklearn's
``TimeSeriesSplit`` keeps time order but neither purges overlapping labels nor embargoes; mlfinlab's
implementation is no longer open source or maintained. Reference: M. López de Prado, *Advances in
Financial Machine Learning* (Wiley, 2018), ch. 7 (purging and embargo, AFML 7.4).

Conventions:

* Samples are events in time order with spans ``[t0_i, t1_i]`` of **bar indices, inclusive both
  ends** (``engine.ml.labels``); ``t0`` must be non-decreasing. For fixed-horizon labels on every
  bar, ``t0 = arange(n)`` and ``t1 = labels.event_ends(n, horizon)``.
* Test sets are **contiguous blocks of samples** (never shuffled). For a block with first start
  ``T0 = t0[first]`` and last end ``T1 = max t1[block]``, a training sample ``j`` must satisfy
  ``t1_j < T0`` (ends before the test starts) or ``t0_j > T1 + embargo`` (starts after the test's
  last label is settled, plus the embargo). Everything else is purged. Because ``t0`` is sorted,
  overlap with the block's hull ``[T0, T1]`` is the same as overlap with some test sample's span.
* ``embargo`` is in **bars**: an ``int`` >= 0 is a number of bars; a ``float`` in [0, 1) is a
  fraction of the bars the samples cover (``max t1 - min t0 + 1``), rounded down (AFML's
  ``pctEmbargo``). For one sample per bar, bars and samples coincide. The embargo guards against
  training on samples right after the test block, whose look-back features overlap the test period.
* Walk-forward trains strictly before each test block (``t1_j < T0 - embargo``), so there the
  embargo is a gap before the test (like ``TimeSeriesSplit(gap=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64
from algotrendy.engine.ml.labels import spans

I64 = npt.NDArray[np.int64]
Split = tuple[I64, I64]


def _spans(t0: npt.ArrayLike, t1: npt.ArrayLike) -> tuple[I64, I64]:
    return spans(t0, t1, ordered=True)


def embargo_bars(embargo: float, t0: I64, t1: I64) -> int:
    """The embargo in bars: an ``int`` as is; a ``float`` in [0, 1) times the bars covered."""
    if isinstance(embargo, bool):
        raise TypeError("embargo must be an int (bars) or a float fraction in [0, 1)")
    if isinstance(embargo, int | np.integer):
        if embargo < 0:
            raise ValueError("embargo must be >= 0 bars")
        return int(embargo)
    e = float(embargo)
    if not 0.0 <= e < 1.0:
        raise ValueError("a float embargo is a fraction of the bars covered, in [0, 1)")
    if len(t0) == 0:
        return 0
    return math.floor(e * (int(t1.max()) - int(t0.min()) + 1))


def _train_mask(t0: I64, t1: I64, a: int, b: int, gap_before: int, gap_after: int) -> npt.NDArray[np.bool_]:
    lo = t0[a]
    hi = t1[a:b].max()
    return np.asarray((t1 < lo - gap_before) | (t0 > hi + gap_after))


def purged_kfold(
    t0: npt.ArrayLike, t1: npt.ArrayLike, n_splits: int = 5, embargo: float = 0
) -> Iterator[Split]:
    """Purged k-fold (AFML 7.4): ``n_splits`` contiguous test blocks of samples (sizes as
    ``np.array_split``); training is every other sample whose span is clear of the test block,
    purged before it and purged plus embargoed after it. Yields ``(train_idx, test_idx)``."""
    a0, a1 = _spans(t0, t1)
    n = len(a0)
    if n_splits < 2:
        raise ValueError("n_splits must be >= 2")
    if n < n_splits:
        raise ValueError(f"cannot split {n} samples into {n_splits} folds")
    h = embargo_bars(embargo, a0, a1)
    for block in np.array_split(np.arange(n, dtype=np.int64), n_splits):
        a, b = int(block[0]), int(block[-1]) + 1
        train = np.flatnonzero(_train_mask(a0, a1, a, b, 0, h)).astype(np.int64)
        yield train, block


def purged_walk_forward(
    t0: npt.ArrayLike,
    t1: npt.ArrayLike,
    n_splits: int,
    min_train: int,
    embargo: float = 0,
    *,
    rolling: bool = False,
) -> Iterator[Split]:
    """Purged walk-forward: samples ``[min_train, n)`` are cut into ``n_splits`` contiguous test
    blocks; each block trains on the samples before it (expanding, or with ``rolling=True`` only
    the last ``min_train`` samples before it) whose spans end more than ``embargo`` bars before the
    block's first bar (so training labels are settled before the test starts). Yields
    ``(train_idx, test_idx)``; a train set may be smaller than ``min_train`` after purging."""
    a0, a1 = _spans(t0, t1)
    n = len(a0)
    if n_splits < 1:
        raise ValueError("n_splits must be >= 1")
    if min_train < 1 or n - min_train < n_splits:
        raise ValueError(f"need min_train >= 1 and at least n_splits test samples after it (n={n})")
    h = embargo_bars(embargo, a0, a1)
    for block in np.array_split(np.arange(min_train, n, dtype=np.int64), n_splits):
        a, b = int(block[0]), int(block[-1]) + 1
        start = a - min_train if rolling else 0
        before = np.arange(start, a, dtype=np.int64)
        keep = _train_mask(a0, a1, a, b, h, 0)[start:a]
        yield before[keep], block


def _n_samples(x: Any) -> int:
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape is not None else len(x)


class PurgedKFold:
    """Purged k-fold with embargo, usable as scikit-learn's ``cv=`` argument.

    Give the sample spans at construction (``t0``, ``t1``, aligned with the rows of ``X``) and use
    ``split(X, y=None, groups=None)``; or call ``split_spans(t0, t1)`` directly. Without spans,
    ``split(X)`` treats each row as a one-bar label (``t0 = t1 = row``): an unshuffled k-fold with
    the embargo only. See the module docstring for the purge/embargo rule and units.
    """

    def __init__(
        self,
        n_splits: int = 5,
        embargo: float = 0,
        *,
        t0: npt.ArrayLike | None = None,
        t1: npt.ArrayLike | None = None,
    ) -> None:
        if n_splits < 2:
            raise ValueError("n_splits must be >= 2")
        if (t0 is None) != (t1 is None):
            raise ValueError("give both t0 and t1, or neither")
        self.n_splits = int(n_splits)
        self.embargo = embargo
        self.t0: I64 | None = None
        self.t1: I64 | None = None
        if t0 is not None and t1 is not None:
            self.t0, self.t1 = _spans(t0, t1)
        embargo_bars(embargo, np.zeros(0, np.int64), np.zeros(0, np.int64))  # validate early

    def __repr__(self) -> str:
        return f"PurgedKFold(n_splits={self.n_splits}, embargo={self.embargo!r})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def split_spans(self, t0: npt.ArrayLike, t1: npt.ArrayLike) -> Iterator[Split]:
        return purged_kfold(t0, t1, self.n_splits, self.embargo)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Split]:
        n = _n_samples(X)
        if self.t0 is None or self.t1 is None:
            idx = np.arange(n, dtype=np.int64)
            return self.split_spans(idx, idx)
        if len(self.t0) != n:
            raise ValueError(f"X has {n} rows but the spans given at construction have {len(self.t0)}")
        return self.split_spans(self.t0, self.t1)


def _rows(x: Any, idx: I64) -> Any:
    return x.iloc[idx] if hasattr(x, "iloc") else x[idx]


def cross_val_predict_proba(
    model_factory: Callable[[], Any],
    X: Any,
    y: npt.ArrayLike,
    cv: Any,
    sample_weight: npt.ArrayLike | None = None,
) -> F64:
    """Out-of-sample probability of the positive class (the larger of ``y``'s two values).

    For each ``(train, test)`` of ``cv`` (an object with ``split(X, y)``, e.g. ``PurgedKFold`` built
    with spans, or an iterable of index pairs, e.g. ``purged_walk_forward(...)``), fits a fresh
    ``model_factory()`` on the train rows (with ``sample_weight`` when given) and predicts the test
    rows with ``predict_proba``. Samples never in a test set are NaN (walk-forward's first
    ``min_train``). A sample tested twice keeps its last prediction.
    """
    yy = np.asarray(y)
    n = _n_samples(X)
    if len(yy) != n:
        raise ValueError("X and y must have the same number of rows")
    classes = np.unique(yy)
    if len(classes) != 2:
        raise ValueError(f"binary labels expected, got classes {classes.tolist()}")
    positive = classes[1]
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    splits: Iterable[Split] = cv.split(X, yy) if hasattr(cv, "split") else cv
    out = np.full(n, np.nan)
    for train, test in splits:
        tr = np.asarray(train, dtype=np.int64)
        te = np.asarray(test, dtype=np.int64)
        if len(te) == 0:
            continue
        if len(np.unique(yy[tr])) < 2:
            raise ValueError("a training fold holds a single class; use fewer folds or more data")
        model = model_factory()
        if w is None:
            model.fit(_rows(X, tr), yy[tr])
        else:
            model.fit(_rows(X, tr), yy[tr], sample_weight=w[tr])
        proba = np.asarray(model.predict_proba(_rows(X, te)), dtype=np.float64)
        col = list(np.asarray(model.classes_)).index(positive)
        out[te] = proba[:, col]
    return out


def oos_scores(y: npt.ArrayLike, p: npt.ArrayLike) -> dict[str, float]:
    """AUC, accuracy and balanced accuracy (at p >= 0.5), log loss and Brier score of out-of-sample
    probabilities ``p`` of the positive class (the larger of ``y``'s two values); samples with NaN
    ``p`` (never tested) are ignored. Also ``n``, the number scored. Needs scikit-learn."""
    from sklearn import metrics

    yy = np.asarray(y)
    pp = np.asarray(p, dtype=np.float64)
    if yy.shape != pp.shape:
        raise ValueError("y and p must have the same shape")
    m = ~np.isnan(pp)
    classes = np.unique(yy[m])
    if len(classes) != 2:
        raise ValueError("need both classes among the scored samples")
    yb = (yy[m] == classes[1]).astype(np.int64)
    ps = pp[m]
    pred = (ps >= 0.5).astype(np.int64)
    return {
        "auc": float(metrics.roc_auc_score(yb, ps)),
        "accuracy": float(metrics.accuracy_score(yb, pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(yb, pred)),
        "log_loss": float(metrics.log_loss(yb, np.clip(ps, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(metrics.brier_score_loss(yb, ps)),
        "n": float(m.sum()),
    }
