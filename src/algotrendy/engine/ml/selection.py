"""Steps 3 and 4 of ``pipeline.train``: feature selection (MDI or purged-CV permutation
importance) and the Optuna hyperparameter search, both on the training part only (see
``pipeline``'s docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64
from algotrendy.engine.ml.models import suggest, validate_params
from algotrendy.engine.ml.steps import I64, _positive, _Reporter, _Trainer


def _log_loss(y: npt.NDArray[np.int64], p: F64) -> float:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _auc(y: npt.NDArray[np.int64], p: F64) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def _select(tr: _Trainer, names: Sequence[str], rep: _Reporter) -> tuple[I64, dict[str, float] | None]:
    config = tr.config
    n_feat = len(names)
    all_cols = np.arange(n_feat, dtype=np.int64)
    if config.selection == "none":
        return all_cols, None
    if config.selection == "mdi":
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(
            n_estimators=100,
            max_features=1,
            min_samples_leaf=50,
            max_samples=min(1.0, max(0.05, tr.uniqueness)),
            random_state=config.seed,
            n_jobs=config.n_jobs,
        )
        forest.fit(tr.X_all, tr.y, sample_weight=tr.w)
        importance = np.asarray(forest.feature_importances_, dtype=np.float64)
    else:
        rng = np.random.default_rng(config.seed)
        gains = np.zeros(n_feat)
        k = len(tr.splits)
        for f, (train_idx, test_idx) in enumerate(tr.splits):
            model = tr.fit(config.hyperparams, all_cols, train_idx)
            X_test = tr.X_all[test_idx]
            s = tr.scored[test_idx]
            y_test = tr.y[test_idx][s]
            base = _log_loss(y_test, _positive(model, X_test)[s])
            for j in range(n_feat):
                shuffled = X_test.copy()
                shuffled[:, j] = rng.permutation(shuffled[:, j])
                gains[j] += _log_loss(y_test, _positive(model, shuffled)[s]) - base
            rep.at("FeatureSelection", (f + 1) / (k + 1))
        importance = gains / k
    order = sorted(range(n_feat), key=lambda j: (-importance[j], j))
    cols = np.array(sorted(order[: config.select_k]), dtype=np.int64)
    return cols, {names[j]: float(importance[j]) for j in range(n_feat)}


def _optimize(
    tr: _Trainer, cols: I64, rep: _Reporter
) -> tuple[dict[str, Any], F64 | None, dict[str, Any] | None]:
    config = tr.config
    if config.optimize_trials == 0:
        return validate_params(config.model_type, config.hyperparams), None, None
    import optuna

    trials = config.optimize_trials
    k = len(tr.splits)
    maximize = config.optimize_metric == "auc"
    oos: dict[int, F64] = {}
    chosen: dict[int, dict[str, Any]] = {}

    def objective(trial: optuna.Trial) -> float:
        params = validate_params(config.model_type, suggest(trial, config.model_type, config.hyperparams))
        n = trial.number

        def fold(f: int) -> None:
            rep.at("HyperparameterOptimization", (n * k + f) / (trials * k))

        p = tr.cv_proba(params, cols, fold)
        oos[n], chosen[n] = p, params
        s = tr.scored
        return _auc(tr.y[s], p[s]) if maximize else _log_loss(tr.y[s], p[s])

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=config.seed),
        )
        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = study.best_trial.number
    info = {
        "trials": trials,
        "metric": config.optimize_metric,
        "direction": "maximize" if maximize else "minimize",
        "best_trial": best,
        "best_value": float(study.best_value),
        "best_params": chosen[best],
        "values": [float(t.value) if t.value is not None else None for t in study.trials],
    }
    return chosen[best], oos[best], info
