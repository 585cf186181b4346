"""MLflow registry on a local SQLite store: runs, registered versions, the serving alias, deletes,
concurrent writers, per-owner names, an unreachable server."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from algotrendy.core.errors import Invalid, NotFound, TemporaryError
from algotrendy.engine.ml.pipeline import TrainedModel
from algotrendy.services.ml import artifacts
from algotrendy.services.ml.registry import MlflowRegistry, run_metrics, run_params
from tests.integration.ml.test_artifacts import tiny_model

DATA_RANGE = {"start": "2020-09-13T12:00:00+00:00", "end": "2020-10-04T11:00:00+00:00"}


def sqlite_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return tiny_model()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, trained: TrainedModel) -> tuple[uuid.UUID, Path, str]:
    model_id = uuid.uuid4()
    path, sha = artifacts.save(root=tmp_path_factory.mktemp("models"), model_id=model_id, trained=trained)
    return model_id, path, sha


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ml")


@pytest.fixture(scope="module")
def registry(store: Path) -> MlflowRegistry:
    return MlflowRegistry(tracking_uri=sqlite_uri(store), artifact_location=str(store / "mlartifacts"))


@pytest.fixture(scope="module")
def client(registry: MlflowRegistry) -> MlflowClient:
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


def log(
    registry: MlflowRegistry,
    trained: TrainedModel,
    saved: tuple[uuid.UUID, Path, str],
    *,
    owner: uuid.UUID,
    name: str = "aapl-daily",
    version: int = 1,
    model_id: uuid.UUID | None = None,
    summary: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Log ``saved``'s file as a version (a new model id unless given)."""
    return registry.log_version(
        owner=owner,
        name=name,
        version=version,
        model_id=uuid.uuid4() if model_id is None else model_id,
        summary=trained.summary() if summary is None else summary,
        artifact=saved[1],
        data_range=DATA_RANGE,
    )


def test_two_versions_are_runs_and_registered_versions(
    registry: MlflowRegistry,
    client: MlflowClient,
    trained: TrainedModel,
    saved: tuple[uuid.UUID, Path, str],
    store: Path,
    tmp_path: Path,
) -> None:
    owner, id1, id2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run1, v1 = log(registry, trained, saved, owner=owner, version=1, model_id=id1)
    run2, v2 = log(registry, trained, saved, owner=owner, version=2, model_id=id2)
    assert (v1, v2) == ("1", "2")
    assert run1 != run2

    listed = registry.versions(owner=owner, name="aapl-daily")
    assert [(v["version"], v["run_id"]) for v in listed] == [("1", run1), ("2", run2)]
    assert listed[0]["tags"] == {"model_id": str(id1), "version": "1"}
    assert listed[0]["aliases"] == []

    run = client.get_run(run2)
    summary = trained.summary()
    assert run.info.run_name == "aapl-daily v2"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["model_id"] == str(id2)
    assert tags["owner"] == str(owner)
    assert (tags["name"], tags["version"], tags["model_type"]) == ("aapl-daily", "2", "lightgbm")
    assert (tags["data_start"], tags["data_end"]) == (DATA_RANGE["start"], DATA_RANGE["end"])

    params = run.data.params
    assert params["label.horizon"] == "1"
    assert params["label.kind"] == "direction"
    assert params["features"] == "minimal"
    assert params["cv_splits"] == "2"
    assert params["hyperparams.n_estimators"] == "10"  # fitted parameters, user-fixed or default
    assert params["hyperparams.learning_rate"] == str(trained.params["learning_rate"])
    assert params["fixed_hyperparams"] == "min_child_samples,n_estimators,num_leaves"
    assert params == run_params(summary)

    metrics = run.data.metrics
    assert metrics["holdout.model.accuracy"] == pytest.approx(
        summary["metrics"]["holdout"]["model"]["accuracy"]
    )
    assert metrics["cv.model.auc"] == pytest.approx(summary["metrics"]["cv"]["model"]["auc"])
    assert metrics["n_train"] == summary["metrics"]["n_train"]
    assert "cv.baselines.majority.ic" not in metrics  # null in the summary: not a number
    assert metrics == pytest.approx(run_metrics(summary["metrics"]))

    files = {f.path for f in client.list_artifacts(run2)} | {
        f.path for f in client.list_artifacts(run2, "model")
    }
    assert {"model/model.pkl", "summary.json", "features.txt"} <= files
    got = Path(client.download_artifacts(run2, "", str(tmp_path)))
    assert (got / "features.txt").read_text().splitlines() == list(trained.feature_names)
    assert hashlib.sha256((got / "model" / "model.pkl").read_bytes()).hexdigest() == saved[2]
    assert (got / "summary.json").read_text().startswith("{")
    assert run.info.artifact_uri.startswith((store / "mlartifacts").as_uri())  # not ./mlruns

    rname = registry.registered_name(owner, "aapl-daily")
    mv = client.get_model_version(rname, v2)
    assert mv.run_id == run2
    assert mv.source == f"{run.info.artifact_uri}/model/model.pkl"
    assert mv.tags == {"model_id": str(id2), "version": "2"}
    assert "aapl-daily" in (client.get_registered_model(rname).description or "")


def test_logging_a_model_id_again_returns_its_version(
    registry: MlflowRegistry, client: MlflowClient, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    owner, model_id = uuid.uuid4(), uuid.uuid4()
    first = log(registry, trained, saved, owner=owner, model_id=model_id)
    again = log(registry, trained, saved, owner=owner, model_id=model_id)  # a retry
    assert again == first
    assert [v["run_id"] for v in registry.versions(owner=owner, name="aapl-daily")] == [first[0]]
    experiment = client.get_experiment_by_name("algotrendy")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], f"tags.owner = '{owner}'")
    assert [r.info.run_id for r in runs] == [first[0]]


def test_serving_alias_moves_and_clears(
    registry: MlflowRegistry, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    owner = uuid.uuid4()
    assert registry.serving_version(owner=owner, name="aapl-daily") is None  # never registered
    _, v1 = log(registry, trained, saved, owner=owner, version=1)
    _, v2 = log(registry, trained, saved, owner=owner, version=2)
    assert registry.serving_version(owner=owner, name="aapl-daily") is None

    registry.set_serving(owner=owner, name="aapl-daily", registry_version=v1)
    assert registry.serving_version(owner=owner, name="aapl-daily") == v1
    registry.set_serving(owner=owner, name="aapl-daily", registry_version=v2)
    assert registry.serving_version(owner=owner, name="aapl-daily") == v2
    aliases = {v["version"]: v["aliases"] for v in registry.versions(owner=owner, name="aapl-daily")}
    assert aliases == {v1: [], v2: ["serving"]}

    registry.clear_serving(owner=owner, name="aapl-daily")
    assert registry.serving_version(owner=owner, name="aapl-daily") is None
    registry.clear_serving(owner=owner, name="aapl-daily")  # nothing to clear
    registry.clear_serving(owner=owner, name="never-registered")

    with pytest.raises(NotFound, match="no version 9"):
        registry.set_serving(owner=owner, name="aapl-daily", registry_version="9")
    with pytest.raises(NotFound):
        registry.set_serving(owner=owner, name="never-registered", registry_version="1")


def test_delete_version_is_idempotent_and_drops_the_empty_registered_model(
    registry: MlflowRegistry, client: MlflowClient, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    owner = uuid.uuid4()
    _, v1 = log(registry, trained, saved, owner=owner, version=1)
    run2, v2 = log(registry, trained, saved, owner=owner, version=2)
    registry.set_serving(owner=owner, name="aapl-daily", registry_version=v2)

    registry.delete_version(owner=owner, name="aapl-daily", registry_version=v1)
    registry.delete_version(owner=owner, name="aapl-daily", registry_version=v1)  # gone already
    assert [v["version"] for v in registry.versions(owner=owner, name="aapl-daily")] == [v2]

    registry.delete_version(owner=owner, name="aapl-daily", registry_version=v2)  # the serving one
    assert registry.versions(owner=owner, name="aapl-daily") == []
    assert registry.serving_version(owner=owner, name="aapl-daily") is None
    with pytest.raises(MlflowException, match="not found"):
        client.get_registered_model(registry.registered_name(owner, "aapl-daily"))
    registry.delete_version(owner=owner, name="aapl-daily", registry_version=v2)  # model gone too
    assert client.get_run(run2).info.status == "FINISHED"  # the run stays in the history

    _, again = log(registry, trained, saved, owner=owner, version=3)  # the lineage can start over
    assert again == "1"


def test_five_threads_log_different_models_at_once(
    tmp_path: Path, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    # a fresh store: the first calls also race to create MLflow's tables and the experiment
    registry = MlflowRegistry(tracking_uri=sqlite_uri(tmp_path))
    owner = uuid.uuid4()
    barrier = threading.Barrier(5)
    results: dict[int, tuple[str, str]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = log(registry, trained, saved, owner=owner, name=f"model-{i}", version=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(results) == [0, 1, 2, 3, 4]
    assert len({run for run, _ in results.values()}) == 5
    for i in range(5):
        listed = registry.versions(owner=owner, name=f"model-{i}")
        assert [(v["version"], v["run_id"]) for v in listed] == [("1", results[i][0])]
    assert (tmp_path / "mlartifacts").is_dir()  # next to the database by default


_PROCESS = """
import sys, time, uuid
from pathlib import Path
import mlflow  # imported before the start line, so the processes race on the database, not on imports
from algotrendy.services.ml.registry import MlflowRegistry
store, me = Path(sys.argv[1]), sys.argv[2]
(store / f"ready-{me}").touch()
while not (store / "go").exists():
    time.sleep(0.005)
registry = MlflowRegistry(tracking_uri=f"sqlite:///{store}/ml/mlflow.db")
print(registry.serving_version(owner=uuid.uuid4(), name=f"m{me}"))
"""


@pytest.mark.slow
def test_processes_sharing_a_fresh_database_do_not_break_its_migrations(tmp_path: Path) -> None:
    # without the lock file, two processes starting together run MLflow's migrations twice and fail
    procs = [
        subprocess.Popen([sys.executable, "-c", _PROCESS, str(tmp_path), str(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["None"] * 2


def test_registered_names_are_per_owner(
    registry: MlflowRegistry, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    assert registry.registered_name(alice, "spy") != registry.registered_name(bob, "spy")
    assert registry.registered_name(alice, "spy") == MlflowRegistry.registered_name(alice, "spy")
    assert str(alice) in registry.registered_name(alice, "spy")

    run_a, va = log(registry, trained, saved, owner=alice, name="spy")
    run_b, vb = log(registry, trained, saved, owner=bob, name="spy")
    assert va == vb == "1"  # separate registered models, each at its first version
    registry.set_serving(owner=alice, name="spy", registry_version=va)
    assert registry.serving_version(owner=bob, name="spy") is None
    assert [v["run_id"] for v in registry.versions(owner=alice, name="spy")] == [run_a]
    assert [v["run_id"] for v in registry.versions(owner=bob, name="spy")] == [run_b]
    registry.delete_version(owner=bob, name="spy", registry_version=vb)
    assert registry.serving_version(owner=alice, name="spy") == va

    for bad in ("", "a'b", "x" * 101, "../x", "name with space", "-lead", "trailing\n"):
        with pytest.raises(Invalid):
            registry.registered_name(alice, bad)


def test_mlflow_limits_are_respected(
    registry: MlflowRegistry, client: MlflowClient, trained: TrainedModel, saved: tuple[uuid.UUID, Path, str]
) -> None:
    summary = trained.summary()
    summary["params"] = {**summary["params"], **{f"p{i:03d}": i for i in range(250)}}  # > 100 per batch
    summary["params"]["long"] = "v" * 10_000  # > MLflow's 6000-character value limit
    summary["params"]["k" * 300] = 1  # > 250-character key limit
    summary["metrics"]["extra"] = {f"m{i:04d}": i / 7 for i in range(1500)}  # > 1000 per batch
    summary["metrics"]["extra"]["nan"] = float("nan")
    summary["metrics"]["extra"]["flag"] = True
    run_id, _ = log(registry, trained, saved, owner=uuid.uuid4(), summary=summary)

    run = client.get_run(run_id)
    assert run.data.params["hyperparams.p249"] == "249"
    assert len(run.data.params["hyperparams.long"]) == 6000
    assert max(len(k) for k in run.data.params) == 250
    assert run.data.metrics["extra.m1499"] == pytest.approx(1499 / 7)
    assert "extra.nan" not in run.data.metrics
    assert "extra.flag" not in run.data.metrics


def test_an_unreachable_tracking_server_is_a_temporary_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = MlflowRegistry(tracking_uri=f"http://bob:s3cret@127.0.0.1:{port}")  # no I/O yet
    owner = uuid.uuid4()

    started = time.monotonic()
    with pytest.raises(TemporaryError, match=rf"MLflow at http://127\.0\.0\.1:{port}.*unavailable") as err:
        registry.serving_version(owner=owner, name="aapl-daily")
    assert "s3cret" not in err.value.detail
    with pytest.raises(TemporaryError):
        registry.set_serving(owner=owner, name="aapl-daily", registry_version="1")
    assert time.monotonic() - started < 10


def test_construction_is_cheap_and_defaults_artifacts_next_to_the_database(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from algotrendy.services.ml.registry import MlflowRegistry\n"
        f"r = MlflowRegistry(tracking_uri='sqlite:///{tmp_path}/ml/mlflow.db')\n"
        "print(r.artifact_location)\n"
        "assert 'mlflow' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == (tmp_path / "ml" / "mlartifacts").as_uri()
    assert not (tmp_path / "ml").exists()  # nothing created before first use

    given = MlflowRegistry(tracking_uri="sqlite:///x.db", artifact_location=str(tmp_path / "a"))
    assert given.artifact_location == (tmp_path / "a").as_uri()
    assert (
        MlflowRegistry(tracking_uri="http://h:5000", artifact_location="s3://b/p").artifact_location
        == "s3://b/p"
    )
    assert MlflowRegistry(tracking_uri="http://h:5000").artifact_location is None  # the server decides
