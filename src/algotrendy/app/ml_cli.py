"""``algotrendy ml ...``: train, inspect, promote and use ML models on the command line.

Like the rest of the CLI it builds the container in-process (users, jobs, market data and ml) and
calls the same ``MlApi`` methods the REST routes call; ``--user`` names the owner. ``ml train``
waits for its job and prints each pipeline step (``--no-wait`` leaves it queued: the server's job
runner picks it up).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from algotrendy.app.strategies_cli import User, _fail, _owner, _parsed, _run
from algotrendy.app.trading_cli import _uuid

T = TypeVar("T")

ml_app = typer.Typer(help="ML models: train, list, promote, predict, signals.", no_args_is_help=True)
SERVICES = ["users", "jobs", "marketdata", "ml"]
ModelId = Annotated[str, typer.Argument(help="Model (version) id")]


async def _with(user: str, fn: Callable[[Any, uuid.UUID], Awaitable[T]]) -> T:
    from algotrendy.app import cli
    from algotrendy.app.container import Container

    container = Container.build(cli._settings(services=SERVICES))
    try:
        await container.start()
        if "ml" not in container.services:
            _fail("the ml service is not available: pip install 'algotrendy[ml]'")
        owner = await _owner(container, user)
        return await fn(container.services["ml"], owner)
    finally:
        await container.stop()


def _show(model: Any) -> None:
    typer.echo(model.model_dump_json(indent=2))


def _json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{what} is not JSON: {exc}")


@ml_app.command("train")
def ml_train(
    user: User,
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. AAPL")],
    name: Annotated[str | None, typer.Option(help="Lineage name (next version if it exists)")] = None,
    interval: Annotated[str, typer.Option(help="Bar interval")] = "1d",
    start: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD)")] = None,
    model_type: Annotated[
        str,
        typer.Option(
            "--type", help="lightgbm, xgboost, catboost, logistic, random_forest, voting, stacking, ensemble"
        ),
    ] = "lightgbm",
    features: Annotated[str, typer.Option(help="Feature set name or comma-separated specs")] = "standard",
    horizon: Annotated[int, typer.Option(help="Bars ahead the label looks")] = 1,
    label: Annotated[str, typer.Option(help="direction or triple_barrier")] = "direction",
    trials: Annotated[int, typer.Option(help="Optuna trials (0 = defaults)")] = 0,
    hyperparams: Annotated[str | None, typer.Option(help="Fixed hyperparameters as JSON")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait for the training and print its steps")] = True,
) -> None:
    """Train a model version on stored bars."""
    from algotrendy.services.ml.interface import ModelTrainCreate

    body: dict[str, Any] = {
        "symbol": symbol,
        "name": name,
        "interval": interval,
        "start": start,
        "end": end,
        "model_type": model_type,
        "features": features if "," not in features else [f.strip() for f in features.split(",")],
        "label": {"kind": label, "horizon": horizon},
        "optimize_trials": trials,
        "hyperparams": _json(hyperparams, "--hyperparams") or {},
        "seed": seed,
    }
    request = _parsed(ModelTrainCreate, body, "training")

    async def go(ml: Any, owner: uuid.UUID) -> Any:
        accepted = await ml.train(owner=owner, request=request)
        typer.echo(f"training {accepted.name} v{accepted.version} ({accepted.model_id})")
        if not wait:
            return None
        last = None
        while True:
            status = await ml.status(owner=owner, model_id=accepted.model_id)
            if status.step and status.step != last:
                typer.echo(f"  {status.step} ({status.progress:.0%})")
                last = status.step
            if status.status.value in ("completed", "failed", "cancelled"):
                break
            await asyncio.sleep(0.2)
        return await ml.get(owner=owner, model_id=accepted.model_id)

    model = _run(lambda: _with(user, go))
    if model is None:
        return
    if model.status.value != "completed":
        _fail(f"training {model.status.value}: {model.error}")
    hold = (model.metrics or {}).get("holdout", {})
    majority = ((hold.get("baselines") or {}).get("majority") or {}).get("accuracy")
    test = hold.get("backtest") or {}
    typer.echo(
        f"completed: hold-out accuracy {_num(model.accuracy)} (majority class {_num(majority)}), "
        f"AUC {_num(model.auc)}; MLflow run {model.mlflow_run_id}"
    )
    if test:
        strategy = (test.get("strategy") or {}).get("total_return")
        hold_only = (test.get("buy_and_hold") or {}).get("total_return")
        typer.echo(
            f"hold-out: trading its signals after costs {_num(strategy)}, buy and hold {_num(hold_only)}"
        )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@ml_app.command("list")
def ml_list(
    user: User,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol")] = None,
    status: Annotated[str | None, typer.Option(help="A status, or 'active' (serving)")] = None,
) -> None:
    """Your model versions, newest first."""
    rows = _run(lambda: _with(user, lambda ml, owner: ml.list(owner=owner, symbol=symbol, status=status)))
    for m in rows:
        acc = "-" if m.accuracy is None else f"{m.accuracy:.3f}"
        typer.echo(f"{m.id}  {m.name:<24} v{m.version:<3} {m.model_type:<13} {m.symbol:<8} "
                   f"{m.status.value:<10} {m.stage.value:<8} acc {acc}")  # fmt: skip


@ml_app.command("show")
def ml_show(user: User, model_id: ModelId) -> None:
    """A version's settings, scores and registry ids (JSON)."""
    mid = _uuid(model_id, "model id")
    _show(_run(lambda: _with(user, lambda ml, owner: ml.get(owner=owner, model_id=mid))))


@ml_app.command("promote")
def ml_promote(user: User, model_id: ModelId) -> None:
    """Make a version the one its name serves."""
    mid = _uuid(model_id, "model id")
    m = _run(lambda: _with(user, lambda ml, owner: ml.promote(owner=owner, model_id=mid)))
    typer.echo(f"{m.name} v{m.version} is serving")


@ml_app.command("rollback")
def ml_rollback(user: User, name: Annotated[str, typer.Argument(help="Lineage name")]) -> None:
    """Serve again the version that served before."""
    m = _run(lambda: _with(user, lambda ml, owner: ml.rollback(owner=owner, name=name)))
    typer.echo(f"{m.name} v{m.version} is serving")


@ml_app.command("delete")
def ml_delete(user: User, model_id: ModelId) -> None:
    """Delete a version (not the serving one)."""
    mid = _uuid(model_id, "model id")
    _run(lambda: _with(user, lambda ml, owner: ml.delete(owner=owner, model_id=mid)))
    typer.echo(f"deleted {mid}")


@ml_app.command("predict")
def ml_predict(
    user: User,
    model_id: ModelId,
    features: Annotated[
        str | None, typer.Option(help="Inputs as a JSON object (default: latest bars)")
    ] = None,
) -> None:
    """P(up) from given features or from the latest bars."""
    from algotrendy.services.ml.interface import PredictRequest

    request = _parsed(PredictRequest, {"features": _json(features, "--features")}, "prediction")
    mid = _uuid(model_id, "model id")
    _show(_run(lambda: _with(user, lambda ml, owner: ml.predict(owner=owner, model_id=mid, request=request))))


@ml_app.command("importance")
def ml_importance(user: User, model_id: ModelId) -> None:
    """Gain and mean |SHAP| per feature, largest SHAP first."""
    mid = _uuid(model_id, "model id")
    imp = _run(lambda: _with(user, lambda ml, owner: ml.importance(owner=owner, model_id=mid)))
    for name in sorted(imp.features, key=lambda n: -imp.shap.get(n, 0.0)):
        typer.echo(f"{name:<32} gain {imp.gain.get(name, 0.0):8.4f}  shap {imp.shap.get(name, 0.0):10.6f}")


@ml_app.command("signal")
def ml_signal(
    user: User,
    symbol: Annotated[str, typer.Option(help="Symbol")],
    model_name: Annotated[str | None, typer.Option(help="Use the serving version of this name")] = None,
    interval: Annotated[str, typer.Option(help="Bar interval")] = "1d",
    technical: Annotated[bool, typer.Option(help="Blend in the technical rules")] = True,
) -> None:
    """Compute, store and publish a trading signal on the latest bars."""
    from algotrendy.services.ml.interface import SignalGenerate

    request = _parsed(
        SignalGenerate,
        {"symbol": symbol, "model_name": model_name, "interval": interval, "use_technical": technical},
        "signal",
    )
    sig = _run(lambda: _with(user, lambda ml, owner: ml.generate_signal(owner=owner, request=request)))
    typer.echo(
        f"{sig.signal_type.upper()} {sig.symbol} strength {sig.strength:.2f} confidence {sig.confidence:.2f}"
    )
    typer.echo(sig.reasoning)


@ml_app.command("signals")
def ml_signals(
    user: User,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol")] = None,
    active: Annotated[bool, typer.Option(help="Only signals not expired")] = False,
) -> None:
    """Your signals, newest first."""
    rows = _run(lambda: _with(user, lambda ml, owner: ml.signals(owner=owner, symbol=symbol, active=active)))
    for s in rows:
        typer.echo(f"{s.created_at:%Y-%m-%d %H:%M}  {s.symbol:<8} {s.signal_type:<4} "
                   f"strength {s.strength:.2f} confidence {s.confidence:.2f}  {s.source}")  # fmt: skip
