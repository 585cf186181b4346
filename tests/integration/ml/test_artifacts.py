"""Model files: atomic save, hash-checked load (nothing unpickled before the checks pass), removal."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.ml.pipeline import TrainedModel, TrainingConfig, train
from algotrendy.services.ml import artifacts
from algotrendy.services.ml.artifacts import ArtifactError

TINY = {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 20}


def tiny_bars(n: int = 500, seed: int = 0) -> Bars:
    """Hourly bars with AR(1) returns (the next direction is learnable from ``ret_1``)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, 0.01, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = -0.45 * r[t - 1] + eps[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 3600) * 1_000_000_000
    return Bars(ts, open_, high, low, close, rng.uniform(100, 1000, n))


def tiny_model(seed: int = 0) -> TrainedModel:
    """A real LightGBM ``TrainedModel`` in about a second."""
    config = TrainingConfig(features="minimal", hyperparams=TINY, cv_splits=2, embargo=5, seed=seed)
    return train(tiny_bars(seed=seed), config)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return tiny_model()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    return d


def _marker_payload(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is loaded (what a planted file would do)."""

    class Plant:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(marker),))

    return pickle.dumps(Plant())


def test_round_trip_predicts_identically(root: Path, trained: TrainedModel) -> None:
    model_id = uuid.uuid4()
    path, sha = artifacts.save(root=root, model_id=model_id, trained=trained)

    assert path == root / str(model_id) / "model.pkl"
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    summary = json.loads((path.parent / "summary.json").read_text())
    assert summary == json.loads(json.dumps(trained.summary()))
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pkl", "summary.json"]  # no temp files

    X = np.random.default_rng(1).normal(0, 0.01, (50, len(trained.feature_names)))
    for given in (path, str(path), f"{model_id}/model.pkl"):  # absolute, as a string, relative to root
        loaded = artifacts.load(root=root, path=given, sha256=sha)
        assert isinstance(loaded, TrainedModel)
        assert loaded.feature_names == trained.feature_names
        assert loaded.summary() == trained.summary()
        np.testing.assert_array_equal(loaded.predict_proba(X), trained.predict_proba(X))
    assert artifacts.load(root=root, path=path, sha256=sha.upper()).model_type == "lightgbm"


def test_a_flipped_byte_is_refused(root: Path, trained: TrainedModel) -> None:
    path, sha = artifacts.save(root=root, model_id=uuid.uuid4(), trained=trained)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match="does not match its stored SHA-256") as err:
        artifacts.load(root=root, path=path, sha256=sha)
    assert err.value.reason == "hash_mismatch"


def test_a_planted_pickle_is_refused_without_being_unpickled(
    root: Path, tmp_path: Path, trained: TrainedModel
) -> None:
    # the payload is live: unpickling it creates its marker file
    probe = tmp_path / "probe"
    pickle.loads(_marker_payload(probe))
    assert probe.exists()

    path, sha = artifacts.save(root=root, model_id=uuid.uuid4(), trained=trained)
    marker = tmp_path / "pwned"
    path.write_bytes(_marker_payload(marker))  # replaced on disk; the database still holds ``sha``

    with pytest.raises(ArtifactError) as err:
        artifacts.load(root=root, path=path, sha256=sha)
    assert err.value.reason == "hash_mismatch"
    assert not marker.exists()


def test_a_hash_matching_file_that_is_not_a_model_is_refused(root: Path) -> None:
    path = root / str(uuid.uuid4()) / "model.pkl"
    path.parent.mkdir()
    data = pickle.dumps({"not": "a model"})
    path.write_bytes(data)
    with pytest.raises(ArtifactError, match="not a TrainedModel") as err:
        artifacts.load(root=root, path=path, sha256=hashlib.sha256(data).hexdigest())
    assert err.value.reason == "not_a_model"


@pytest.mark.parametrize("relative", [True, False])
def test_a_path_outside_root_is_refused_even_with_the_right_hash(
    root: Path, tmp_path: Path, relative: bool
) -> None:
    outside = tmp_path / "elsewhere" / "model.pkl"
    outside.parent.mkdir()
    marker = tmp_path / "pwned"
    outside.write_bytes(_marker_payload(marker))
    sha = hashlib.sha256(outside.read_bytes()).hexdigest()
    given = "../elsewhere/model.pkl" if relative else str(root / ".." / "elsewhere" / "model.pkl")

    with pytest.raises(ArtifactError, match="outside the model directory") as err:
        artifacts.load(root=root, path=given, sha256=sha)
    assert err.value.reason == "outside_root"
    assert not marker.exists()
    with pytest.raises(ArtifactError, match="outside"):
        artifacts.load(root=root, path=outside, sha256=sha)  # absolute path elsewhere
    with pytest.raises(ArtifactError, match="outside"):
        artifacts.load(root=root, path=".", sha256=sha)  # root itself


def test_a_symlink_out_of_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    marker = tmp_path / "pwned"
    (outside / "model.pkl").write_bytes(_marker_payload(marker))
    sha = hashlib.sha256((outside / "model.pkl").read_bytes()).hexdigest()

    file_link = root / str(uuid.uuid4()) / "model.pkl"  # the file is a link
    file_link.parent.mkdir()
    file_link.symlink_to(outside / "model.pkl")
    dir_link = root / str(uuid.uuid4())  # the model's directory is a link
    dir_link.symlink_to(outside, target_is_directory=True)

    for link in (file_link, dir_link / "model.pkl"):
        with pytest.raises(ArtifactError, match="outside the model directory") as err:
            artifacts.load(root=root, path=link, sha256=sha)
        assert err.value.reason == "outside_root"
    assert not marker.exists()


def test_a_symlink_within_root_is_followed(root: Path, trained: TrainedModel) -> None:
    path, sha = artifacts.save(root=root, model_id=uuid.uuid4(), trained=trained)
    link = root / "current.pkl"
    link.symlink_to(path)
    assert isinstance(artifacts.load(root=root, path=link, sha256=sha), TrainedModel)


def test_missing_files_bad_hashes_and_directories_are_refused(root: Path) -> None:
    sha = "0" * 64
    with pytest.raises(ArtifactError, match="missing") as err:
        artifacts.load(root=root, path=f"{uuid.uuid4()}/model.pkl", sha256=sha)
    assert err.value.reason == "missing"
    for bad in ("", "abc", "g" * 64, "0" * 63):
        with pytest.raises(ArtifactError) as err:
            artifacts.load(root=root, path="x/model.pkl", sha256=bad)
        assert err.value.reason == "bad_hash"
    (root / "adir").mkdir()
    with pytest.raises(ArtifactError) as err:
        artifacts.load(root=root, path="adir", sha256=sha)
    assert err.value.reason == "not_a_file"


def test_a_failed_write_keeps_the_previous_file(
    root: Path, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_id = uuid.uuid4()
    path, sha = artifacts.save(root=root, model_id=model_id, trained=trained)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        artifacts.save(root=root, model_id=model_id, trained=trained)
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pkl", "summary.json"]
    assert isinstance(artifacts.load(root=root, path=path, sha256=sha), TrainedModel)


def test_save_refuses_anything_but_a_trained_model(root: Path) -> None:
    with pytest.raises(TypeError, match="TrainedModel"):
        artifacts.save(root=root, model_id=uuid.uuid4(), trained={"model": 1})  # type: ignore[arg-type]


def test_remove_is_idempotent_and_never_follows_a_link(
    root: Path, tmp_path: Path, trained: TrainedModel
) -> None:
    model_id = uuid.uuid4()
    path, _ = artifacts.save(root=root, model_id=model_id, trained=trained)
    artifacts.remove(root=root, model_id=model_id)
    assert not path.parent.exists()
    artifacts.remove(root=root, model_id=model_id)  # gone already: nothing to do

    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "precious.txt").write_text("x")
    linked = uuid.uuid4()
    (root / str(linked)).symlink_to(outside, target_is_directory=True)
    artifacts.remove(root=root, model_id=linked)
    assert not (root / str(linked)).exists()
    assert (outside / "precious.txt").read_text() == "x"
