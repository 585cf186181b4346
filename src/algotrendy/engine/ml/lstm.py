"""An LSTM price-direction classifier (the spec's ``price_prediction_lstm``), trained with PyTorch,
predicting with numpy.

    from algotrendy.engine.ml.models import make_model

    model = make_model("lstm", {"seq_len": 32, "hidden_size": 32}, seed=7)
    model.fit(X, y, sample_weight=w)        # needs torch (pip install torch==2.13.0, CPU build)
    p = model.predict_proba(X_new)[:, 1]    # plain numpy: no torch needed
    p_now = model.predict_proba_last(X_recent)[1]   # the latest row's window only

**Windows.** The rows of ``X`` are consecutive bars in time order. For row ``i`` the model reads
the window of the ``seq_len`` rows of ``X`` ending at ``i`` (rows ``i - seq_len + 1 .. i``), so
``predict_proba`` of one bar needs that bar's row and the ``seq_len - 1`` rows before it: pass the
last ``seq_len`` feature rows and read the last output row (``models.sequence_length`` gives the
count for any model, ensembles included). Rows before the start of ``X`` are padding: zeros after
standardization, i.e. the training mean of every feature. The same rule holds in ``fit`` and in
``predict_proba``, so the first ``seq_len - 1`` rows of any call are predicted on truncated
context exactly as the first training rows were trained. A window never reads a row after ``i``:
no look-ahead.

Rows need not be adjacent bars: the window reads the previous rows *given*. When a purged CV fold
(``validation.purged_kfold``, the inner CV of ``stacking``) trains on the rows before and after a
test block, windows just after the gap reach across it into older rows (still at or before ``i``
in time, never into the block). The pipeline predicts a test block (and the hold-out) with the
``seq_len - 1`` complete rows before it as its first windows' context (``steps._positive_at``), as a
live window reads them; ``predict_proba`` of a bare block pads its start. Bars whose label is
undecided (a dead zone, a barrier not touched) stay in the pipeline's rows with weight 0
(``steps._engineer``), so training windows read every bar, as a live window does.

**Features** are standardized with the mean and standard deviation of the training rows (a
constant column: scale 1). Missing values are not imputed: a NaN in a window makes that row's
probability NaN.

**Training** (``fit``, PyTorch imported there and only there): ``num_layers`` LSTM layers of
``hidden_size`` units (``dropout`` between layers and before the head), a linear head on the last
hidden state, the head's bias started at the weighted log-odds of the positive class. Loss: binary
cross-entropy weighted by ``sample_weight``; Adam with ``weight_decay`` (``_Adam``: the update of
``torch.optim.Adam``, without the ``torch._dynamo`` import any ``torch.optim`` optimizer costs),
gradient norm clipped at 1, mini-batches of ``batch_size`` windows shuffled each epoch (a window
keeps its own rows in time order). Early stopping: the last ``validation_fraction`` of the rows
in time order (never shuffled across time) are held back; after each epoch their weighted loss is
measured, training stops after ``patience`` epochs without improvement and the best epoch's
weights are kept. ``validation_fraction=0`` (or too few rows) trains all ``epochs`` and keeps
the last weights. Deterministic given ``random_state``: torch's generator is seeded inside
``fork_rng`` (the caller's random state is untouched), the shuffles come from a seeded numpy
generator, and torch runs on exactly ``n_jobs`` threads during the fit (restored after): on a
shared 2-core machine more threads only contend.

**Prediction is our own numpy forward pass.** After ``fit`` the weights are copied out of torch as
numpy arrays (the estimator keeps no torch object) and ``predict_proba`` runs the LSTM equations
(PyTorch's gate order i, f, g, o) in float64, vectorized over rows: one Python loop over the
``seq_len`` time steps, each a matrix product for all windows at once; the first layer's input
projection is computed once per row and shared by the ``seq_len`` windows that contain it, and the
nonlinearities take two ``exp`` calls per step (``_prepare``). ``predict_proba_last`` computes the
latest row's window alone (a live prediction: ``seq_len`` steps for one row). Why:
a fitted model then unpickles and predicts where torch is not installed (the API server, the
inference service), its pickle is a few to a few tens of kilobytes of arrays, not a torch state dict, loading
it costs no ~5 s ``import torch``, and a prediction has no torch dispatch overhead. The forward
pass matches torch's on the same weights (``tests/unit/engine/ml/test_lstm.py``: 1e-9 against
torch in float64, 1e-5 against the float32 network that was trained).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from algotrendy.engine.ml.models import torch_available, validate_params

__all__ = [
    "TORCH_MISSING",
    "LstmClassifier",
    "LstmWeights",
    "lstm_logits",
    "torch_available",
    "window_logits",
]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

TORCH_MISSING = "model type 'lstm' needs PyTorch: pip install torch==2.13.0 (CPU build)"
_CHUNK = 8192
"""Rows per block of the numpy forward pass (bounds its memory: a few MB per block)."""
_EVAL_BATCH = 2048
"""Windows per block when torch scores the early-stopping rows."""
_MIN_VALIDATION = 10
"""Fewest rows on either side of the early-stopping split; below it no early stopping."""


@dataclass(frozen=True, slots=True)
class LstmWeights:
    """The trained network as numpy arrays (float32, as trained). ``layers[k]`` holds layer
    ``k``'s ``(W_ih (4H, in), W_hh (4H, H), b_ih (4H,), b_hh (4H,))`` in PyTorch's layout (gates
    stacked i, f, g, o); the head maps the last hidden state to the logit of class 1."""

    layers: tuple[tuple[F32, F32, F32, F32], ...]
    head_weight: F32
    head_bias: float

    @property
    def hidden_size(self) -> int:
        return int(self.layers[0][1].shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0][0].shape[1])


def _sigmoid(x: F64) -> F64:
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|
    return out


_Layer = tuple[F64, F64, F64]


def _prepare(weights: LstmWeights) -> list[_Layer]:
    """Each layer as float64 ``(W_ih.T, W_hh.T, b)`` with the gates reordered i, f, o, g and
    scaled by -1 (i, f, o) and -2 (g): then ``1 / (1 + exp(gates))`` gives the three sigmoids
    and, times 2 minus 1, ``tanh(g)``, with one ``exp`` over the whole gate block. (float64
    ``np.tanh`` costs 2.5x ``np.exp`` here; scaling by -1 and -2 is exact.)"""
    H = weights.hidden_size
    order = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]
    scale = np.r_[np.full(3 * H, -1.0), np.full(H, -2.0)]
    out = []
    for w_ih, w_hh, b_ih, b_hh in weights.layers:
        bias = b_ih.astype(np.float64) + b_hh.astype(np.float64)
        out.append(
            (
                np.ascontiguousarray((w_ih.astype(np.float64)[order] * scale[:, None]).T),
                np.ascontiguousarray((w_hh.astype(np.float64)[order] * scale[:, None]).T),
                bias[order] * scale,
            )
        )
    return out


def _step(gates: F64, c: F64, H: int) -> tuple[F64, F64]:
    """One LSTM cell step on prepared gates (``_prepare``), in place on ``gates``."""
    np.exp(gates, out=gates)
    gates += 1.0
    np.reciprocal(gates, out=gates)  # sigmoid(i, f, o), sigmoid(2g)
    g = gates[:, 3 * H :]
    g *= 2.0
    g -= 1.0  # tanh(g)
    c_new: F64 = gates[:, H : 2 * H] * c + gates[:, :H] * g
    t = np.exp(-2.0 * c_new)
    t += 1.0
    np.reciprocal(t, out=t)
    t *= 2.0
    t -= 1.0  # tanh(c)
    t *= gates[:, 2 * H : 3 * H]
    return t, c_new


def _last_hidden(step_input: Callable[[int], F64], m: int, layers: list[_Layer], L: int, H: int) -> F64:
    """The last layer's hidden state after ``L`` steps for ``m`` windows; ``step_input(t)`` is the
    first layer's input projection (plus bias) of every window's row at step ``t``, ``(m, 4H)``."""
    w_hh0 = layers[0][1]
    hs = [np.zeros((m, H)) for _ in layers]
    cs = [np.zeros((m, H)) for _ in layers]
    for t in range(L):
        hs[0], cs[0] = _step(step_input(t) + hs[0] @ w_hh0, cs[0], H)
        for k in range(1, len(layers)):
            w_ih, w_hh, b = layers[k]
            hs[k], cs[k] = _step(hs[k - 1] @ w_ih + hs[k] @ w_hh + b, cs[k], H)
    return hs[-1]


def _block(padded: F64, layers: list[_Layer], L: int, H: int) -> F64:
    """The last hidden state of the windows ``padded[j : j + L]`` for every ``j``."""
    m = padded.shape[0] - L + 1
    w_ih0, _, b0 = layers[0]
    proj = padded @ w_ih0 + b0  # the first layer's input projection, once per row
    return _last_hidden(lambda t: proj[t : t + m], m, layers, L, H)  # window j reads row j + t


def window_logits(W: npt.ArrayLike, weights: LstmWeights) -> F64:
    """The logit of class 1 for each standardized window ``W[j]`` (m, steps, features), read
    oldest row first: windows that need not be adjacent rows of one matrix (an explainer's
    perturbed copies of one bar's window). Same equations and order of operations as ``_block``."""
    Wf = np.asarray(W, dtype=np.float64)
    if Wf.ndim != 3 or Wf.shape[2] != weights.n_inputs:
        raise ValueError(f"expected windows of {weights.n_inputs} features, got shape {Wf.shape}")
    m, L = Wf.shape[0], Wf.shape[1]
    H = weights.hidden_size
    layers = _prepare(weights)
    w_ih0, _, b0 = layers[0]
    head_w = weights.head_weight.astype(np.float64)
    out = np.empty(m)
    with np.errstate(over="ignore"):
        for a in range(0, m, _CHUNK):
            b = min(m, a + _CHUNK)
            proj = Wf[a:b] @ w_ih0 + b0  # (windows, steps, 4H)

            def step_input(t: int, proj: F64 = proj) -> F64:
                row: F64 = proj[:, t]
                return row

            out[a:b] = _last_hidden(step_input, b - a, layers, L, H) @ head_w
    out += weights.head_bias
    return out


def lstm_logits(Z: npt.ArrayLike, weights: LstmWeights, seq_len: int, start: int = 0) -> F64:
    """The logit of class 1 for rows ``start ..`` of the standardized inputs ``Z`` (n, features):
    row ``i`` reads rows ``i - seq_len + 1 .. i``, zeros before the start of ``Z``. Float64, numpy
    only. ``start`` skips the windows of the first rows (``start = n - 1``: the latest only)."""
    Zf = np.asarray(Z, dtype=np.float64)
    if Zf.ndim != 2 or Zf.shape[1] != weights.n_inputs:
        raise ValueError(f"expected a matrix of {weights.n_inputs} columns, got shape {Zf.shape}")
    n = Zf.shape[0]
    if not 0 <= start <= n:
        raise ValueError(f"start must be in [0, {n}], got {start}")
    L = int(seq_len)
    H = weights.hidden_size
    layers = _prepare(weights)
    head_w = weights.head_weight.astype(np.float64)
    padded = np.concatenate([np.zeros((L - 1, Zf.shape[1])), Zf])
    out = np.empty(n - start)
    with np.errstate(over="ignore"):  # exp overflow -> inf -> a sigmoid of exactly 0: intended
        for a in range(start, n, _CHUNK):
            b = min(n, a + _CHUNK)
            out[a - start : b - start] = _block(padded[a : b + L - 1], layers, L, H) @ head_w
    out += weights.head_bias
    return out


class LstmClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A binary classifier on windows of the last ``seq_len`` rows (see the module docstring).

    ``fit`` needs PyTorch; ``predict_proba``/``predict`` need numpy only. Parameters are those of
    ``models.PARAMS["lstm"]`` plus ``random_state`` (the seed) and ``n_jobs`` (torch threads
    during ``fit``). Fitted attributes: ``classes_``, ``n_features_in_``, ``mean_``/``scale_``
    (standardization), ``weights_`` (``LstmWeights``), ``best_epoch_`` (1-based), ``n_epochs_``
    (epochs run) and ``history_`` (per-epoch ``train_loss``/``val_loss``)."""

    def __init__(
        self,
        seq_len: int = 32,
        hidden_size: int = 32,
        num_layers: int = 1,
        epochs: int = 30,
        learning_rate: float = 0.003,
        batch_size: int = 64,
        dropout: float = 0.1,
        weight_decay: float = 1e-4,
        patience: int = 5,
        validation_fraction: float = 0.15,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.seq_len = seq_len
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ---- fitting ---------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None) -> Any:
        """Train on the rows of ``X`` (consecutive bars, time order) with labels ``y`` (two
        classes) and optional non-negative ``sample_weight``. Raises ``ValueError`` for bad input
        or parameters and when PyTorch is not installed (``TORCH_MISSING``)."""
        p = validate_params("lstm", {k: v for k, v in self.get_params().items() if k in _NET_PARAMS})
        if not isinstance(self.n_jobs, int | np.integer) or self.n_jobs < 1:
            raise ValueError(f"n_jobs must be an integer >= 1, got {self.n_jobs!r}")
        Xf = np.asarray(X, dtype=np.float64)
        if Xf.ndim != 2 or Xf.shape[0] < 2 or Xf.shape[1] < 1:
            raise ValueError(f"X must be a matrix of at least 2 rows and 1 column, got shape {Xf.shape}")
        if not np.all(np.isfinite(Xf)):
            raise ValueError("X holds NaN or inf: drop those rows before fitting")
        ya = np.asarray(y).ravel()
        if len(ya) != len(Xf):
            raise ValueError(f"y has {len(ya)} labels for {len(Xf)} rows")
        classes = np.unique(ya)
        if len(classes) != 2:
            raise ValueError(f"y must hold exactly two classes, got {list(classes)}")
        target = (ya == classes[1]).astype(np.float32)
        if sample_weight is None:
            w = np.ones(len(Xf))
        else:
            w = np.asarray(sample_weight, dtype=np.float64).ravel()
            if len(w) != len(Xf) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("sample_weight must be one finite non-negative weight per row, not all 0")
        if not torch_available():
            raise ValueError(TORCH_MISSING)

        mean = Xf.mean(axis=0)
        scale = Xf.std(axis=0)
        scale[~(scale > 0)] = 1.0
        Z = ((Xf - mean) / scale).astype(np.float32)
        weights, history, best = _train(
            Z, target, w.astype(np.float32), p, int(self.random_state), int(self.n_jobs)
        )

        self.classes_ = classes
        self.n_features_in_ = Xf.shape[1]
        self.mean_ = mean
        self.scale_ = scale
        self.weights_ = weights
        self.history_ = history
        self.best_epoch_ = best
        self.n_epochs_ = len(history["train_loss"])
        return self

    # ---- prediction (numpy only) -----------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise NotFittedError("this LstmClassifier is not fitted yet: call fit first")

    def _logits(self, X: npt.ArrayLike, last_only: bool) -> F64:
        self._check_fitted()
        Xf = np.asarray(X, dtype=np.float64)
        if Xf.ndim != 2 or Xf.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} columns, got shape {Xf.shape}")
        if last_only and len(Xf) == 0:
            raise ValueError("X has no rows")
        Xf = Xf[-self.seq_len :] if last_only else Xf  # the last window reads no older row
        Z = (Xf - self.mean_) / self.scale_
        return lstm_logits(Z, self.weights_, self.seq_len, start=len(Z) - 1 if last_only else 0)

    def decision_function(self, X: npt.ArrayLike) -> F64:
        """The logit of ``classes_[1]`` for every row (its window of ``seq_len`` rows)."""
        return self._logits(X, last_only=False)

    def predict_proba(self, X: npt.ArrayLike) -> F64:
        """``(n, 2)`` probabilities of ``classes_[0]``, ``classes_[1]`` for every row of ``X``."""
        p = _sigmoid(self.decision_function(X))
        out: F64 = np.column_stack([1.0 - p, p])
        return out

    def predict_proba_last(self, X: npt.ArrayLike) -> F64:
        """``predict_proba(X)[-1]`` (the latest bar's two probabilities) computing that one
        window only: ``seq_len`` cell steps for one row instead of for ``seq_len`` rows. What a
        live prediction wants: pass the feature rows ending at the bar (extra older rows are
        ignored; fewer than ``seq_len`` are padded as in ``predict_proba``)."""
        p = _sigmoid(self._logits(X, last_only=True))
        out: F64 = np.array([1.0 - p[0], p[0]])
        return out

    def predict_proba_windows(self, W: npt.ArrayLike) -> F64:
        """``P(classes_[1])`` of each window ``W[j]`` (m, ``seq_len``, features; raw feature
        values, oldest row first), each read on its own: what ``predict_proba`` gives the last row
        of a matrix holding just that window."""
        self._check_fitted()
        Wf = np.asarray(W, dtype=np.float64)
        if Wf.ndim != 3 or Wf.shape[1:] != (self.seq_len, self.n_features_in_):
            raise ValueError(f"W must have shape (m, {self.seq_len}, {self.n_features_in_}), got {Wf.shape}")
        return _sigmoid(window_logits((Wf - self.mean_) / self.scale_, self.weights_))

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        """The more likely class of every row (``classes_[1]`` when its probability is > 0.5)."""
        out: npt.NDArray[Any] = self.classes_[(self.decision_function(X) > 0).astype(np.int64)]
        return out


_NET_PARAMS = (
    "seq_len",
    "hidden_size",
    "num_layers",
    "epochs",
    "learning_rate",
    "batch_size",
    "dropout",
    "weight_decay",
    "patience",
    "validation_fraction",
)


# ---- PyTorch (imported lazily: training only) -------------------------------------------------


def _torch() -> Any:
    if not torch_available():
        raise ValueError(TORCH_MISSING)
    return importlib.import_module("torch")


def _torch_net(torch: Any, n_inputs: int, hidden_size: int, num_layers: int, dropout: float) -> Any:
    """The network ``fit`` trains: LSTM layers, dropout, a linear head (``_net_logits``)."""
    nn = torch.nn
    return nn.ModuleDict(
        {
            "lstm": nn.LSTM(
                n_inputs,
                hidden_size,
                num_layers=num_layers,
                batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0,
            ),
            "drop": nn.Dropout(dropout),
            "head": nn.Linear(hidden_size, 1),
        }
    )


def _net_logits(net: Any, windows: Any) -> Any:
    """Logits ``(batch,)`` of windows ``(batch, seq_len, n_inputs)``."""
    out, _ = net["lstm"](windows)
    return net["head"](net["drop"](out[:, -1, :])).squeeze(-1)


def _export(net: Any) -> LstmWeights:
    """The weights of ``_torch_net``'s network as float32 numpy arrays."""
    lstm = net["lstm"]

    def arr(t: Any) -> F32:
        a: F32 = np.array(t.detach().cpu().numpy(), dtype=np.float32)
        return a

    layers = tuple(
        (
            arr(getattr(lstm, f"weight_ih_l{k}")),
            arr(getattr(lstm, f"weight_hh_l{k}")),
            arr(getattr(lstm, f"bias_ih_l{k}")),
            arr(getattr(lstm, f"bias_hh_l{k}")),
        )
        for k in range(lstm.num_layers)
    )
    head = net["head"]
    return LstmWeights(layers, arr(head.weight).reshape(-1), float(head.bias.detach().cpu().item()))


class _Adam:
    """Adam (Kingma & Ba) with L2 ``weight_decay`` added to the gradient: ``torch.optim.Adam``'s
    default update, step for step. Our own because the first ``torch.optim`` optimizer imports
    ``torch._dynamo``, 2 s (7 s without bytecode caches) on top of ``import torch`` for a fit that
    takes about a second."""

    def __init__(self, torch: Any, params: list[Any], lr: float, weight_decay: float) -> None:
        self.torch = torch
        self.params = params
        self.lr = lr
        self.weight_decay = weight_decay
        self.betas = (0.9, 0.999)
        self.eps = 1e-8
        self.t = 0
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]

    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        step_size = self.lr / (1.0 - b1**self.t)
        root_correction = math.sqrt(1.0 - b2**self.t)
        with self.torch.no_grad():
            for q, m, v in zip(self.params, self.m, self.v, strict=True):
                g = q.grad if self.weight_decay == 0 else q.grad.add(q, alpha=self.weight_decay)
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                q.addcdiv_(m, (v.sqrt() / root_correction).add_(self.eps), value=-step_size)

    def zero_grad(self) -> None:
        for q in self.params:
            q.grad = None


def _train(
    Z: F32, target: F32, w: F32, p: dict[str, Any], seed: int, n_jobs: int
) -> tuple[LstmWeights, dict[str, list[float]], int]:
    """Fit the network on standardized rows ``Z``; returns its weights, the loss history and the
    kept (1-based) epoch."""
    torch = _torch()
    n, n_inputs = Z.shape
    L = int(p["seq_len"])
    n_val = round(n * float(p["validation_fraction"]))
    if n_val < _MIN_VALIDATION or n - n_val < _MIN_VALIDATION:
        n_val = 0
    n_fit = n - n_val
    rng = np.random.default_rng(seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(n_jobs)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            padded = torch.from_numpy(np.concatenate([np.zeros((L - 1, n_inputs), np.float32), Z]))
            offsets = torch.arange(L)
            yt = torch.from_numpy(target)
            wt = torch.from_numpy(w)

            def windows(rows: Any) -> Any:
                return padded[rows[:, None] + offsets[None, :]]

            def loss_of(logits: Any, rows: Any) -> Any:
                losses = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, yt[rows], reduction="none"
                )
                return (losses * wt[rows]).sum() / wt[rows].sum().clamp_min(1e-12)

            net = _torch_net(
                torch, n_inputs, int(p["hidden_size"]), int(p["num_layers"]), float(p["dropout"])
            )
            rate = float(
                np.clip((w[:n_fit] * target[:n_fit]).sum() / max(w[:n_fit].sum(), 1e-12), 1e-3, 1 - 1e-3)
            )
            with torch.no_grad():
                net["head"].bias.fill_(math.log(rate / (1.0 - rate)))
            params = list(net.parameters())
            opt = _Adam(torch, params, float(p["learning_rate"]), float(p["weight_decay"]))
            batch = int(p["batch_size"])
            val_rows = torch.arange(n_fit, n)
            history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
            best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
            for epoch in range(1, int(p["epochs"]) + 1):
                net.train()
                order = torch.from_numpy(rng.permutation(n_fit))
                total, seen = 0.0, 0.0
                for start in range(0, n_fit, batch):
                    rows = order[start : start + batch]
                    loss = loss_of(_net_logits(net, windows(rows)), rows)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    bw = float(wt[rows].sum())
                    total += float(loss.detach()) * bw
                    seen += bw
                history["train_loss"].append(total / max(seen, 1e-12))
                if n_val == 0:
                    continue
                net.eval()
                with torch.no_grad():
                    logits = torch.cat(
                        [
                            _net_logits(net, windows(val_rows[s : s + _EVAL_BATCH]))
                            for s in range(0, n_val, _EVAL_BATCH)
                        ]
                    )
                    val_loss = float(loss_of(logits, val_rows))
                history["val_loss"].append(val_loss)
                if val_loss < best_loss - 1e-7:
                    best_loss, best_epoch, stale = val_loss, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= int(p["patience"]):
                        break
            if best_state is not None:
                net.load_state_dict(best_state)
            else:
                best_epoch = len(history["train_loss"])
            net.eval()
            return _export(net), history, best_epoch
    finally:
        torch.set_num_threads(previous_threads)
