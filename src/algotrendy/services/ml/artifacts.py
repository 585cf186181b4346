"""The model files of the platform's own registry: one directory per trained model version.

    root/<model_id>/model.pkl      the pickled ``TrainedModel`` (fitted classifier and metadata)
    root/<model_id>/summary.json   ``TrainedModel.summary()``: readable without unpickling anything

    path, sha256 = save(root=root, model_id=model_id, trained=trained)   # keep both in the DB row
    trained = load(root=root, path=path, sha256=sha256)
    remove(root=root, model_id=model_id)

**Why pickle.** A model here is any fitted sklearn-compatible estimator: LightGBM, XGBoost and
CatBoost wrappers, sklearn voting/stacking ensembles, the platform's own purged-CV wrappers.
Each library's native format covers only its own booster, and ONNX/PMML exports lose parts of
the wrappers; pickle is the only format that keeps the whole fitted object. Unpickling runs
whatever code the file names, so it is safe only for files we wrote ourselves, and ``load``
makes sure that is what it reads.

**Why the hash check.** ``save`` returns the SHA-256 of the bytes it wrote; the service keeps it
in the model's database row. ``load`` takes that hash and, *before* unpickling, refuses

- a path that resolves outside ``root`` (``..``, an absolute path elsewhere, a symlink pointing
  out of it): the row's path alone cannot make it read an arbitrary file;
- a missing file, or anything but a regular file;
- a file whose SHA-256 differs from the row's.

The hash lives in the database, a different trust domain from the file system: whoever can
write to the model directory (a shared volume, a restored backup, another process on the host)
but not to the database cannot get code run by replacing or corrupting a file. The bytes are
read once, hashed and unpickled from memory, so the file cannot change between the check and
the load. This is an integrity check, not a signature: someone who can write both the database
and the files is already past it.

Writes are atomic (temporary file in the same directory, ``fsync``, ``os.replace``, directory
``fsync``): a crash leaves the old file or the new one, never half of one. Files are created
``0600``. Errors are ``ArtifactError`` (an internal failure, not the caller's: the service logs
it and answers 500, or marks the model unusable); ``reason`` says which check failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pickle  # see the module docstring: only hash-checked files we wrote are unpickled
import re
import shutil
import stat
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

from algotrendy.engine.ml.pipeline import TrainedModel

__all__ = ["MODEL_FILE", "SUMMARY_FILE", "ArtifactError", "load", "model_dir", "remove", "save"]

MODEL_FILE = "model.pkl"
SUMMARY_FILE = "summary.json"

Reason = Literal[
    "outside_root", "missing", "not_a_file", "bad_hash", "hash_mismatch", "unreadable", "not_a_model"
]
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactError(Exception):
    """A model file that must not or cannot be loaded. ``reason`` names the failed check."""

    def __init__(self, message: str, *, reason: Reason) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def model_dir(*, root: Path, model_id: uuid.UUID) -> Path:
    """The directory holding one model version's files."""
    return Path(root) / str(uuid.UUID(str(model_id)))


def save(*, root: Path, model_id: uuid.UUID, trained: TrainedModel) -> tuple[Path, str]:
    """Write ``model.pkl`` and ``summary.json`` under ``root/<model_id>/`` atomically; returns the
    model file's path and the SHA-256 (hex) of its bytes, to be stored in the database row."""
    if not isinstance(trained, TrainedModel):
        raise TypeError(f"expected a TrainedModel, got {type(trained).__name__}")
    directory = model_dir(root=root, model_id=model_id)
    directory.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(trained, protocol=pickle.HIGHEST_PROTOCOL)
    summary = json.dumps(trained.summary(), indent=2, sort_keys=True, default=_json_default)
    path = directory / MODEL_FILE
    _write_atomic(path, data)
    _write_atomic(directory / SUMMARY_FILE, summary.encode())
    return path, hashlib.sha256(data).hexdigest()


def load(*, root: Path, path: str | Path, sha256: str) -> TrainedModel:
    """The ``TrainedModel`` in ``path`` (absolute, or relative to ``root``), unpickled only after
    the path, the file type and the SHA-256 check out (see the module docstring)."""
    expected = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not _SHA256.fullmatch(expected):
        raise ArtifactError("the stored model hash is not a SHA-256 hex digest", reason="bad_hash")
    real = _inside(Path(root), Path(path))
    data = _read_regular(real)
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
        raise ArtifactError(
            f"model file {_shown(real, root)} does not match its stored SHA-256: refused, not loaded",
            reason="hash_mismatch",
        )
    try:
        obj = pickle.loads(data)  # noqa: S301 -- the bytes match the hash we recorded when writing them
    except Exception as exc:  # any unpickling failure (missing library, version skew) means unusable
        raise ArtifactError(
            f"model file {_shown(real, root)} cannot be unpickled: {type(exc).__name__}: {exc}",
            reason="unreadable",
        ) from exc
    if not isinstance(obj, TrainedModel):
        raise ArtifactError(
            f"model file {_shown(real, root)} holds a {type(obj).__name__}, not a TrainedModel",
            reason="not_a_model",
        )
    return obj


def remove(*, root: Path, model_id: uuid.UUID) -> None:
    """Delete ``root/<model_id>/`` and everything in it; nothing to do if it is gone already."""
    directory = model_dir(root=root, model_id=model_id)
    if directory.is_symlink():  # never follow a planted link out of root: drop the link itself
        directory.unlink()
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)


# ---- helpers --------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """``path`` gets ``data`` entirely or not at all, durable once this returns."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(root: Path, path: Path) -> Path:
    """``path`` (relative to ``root`` or absolute) with every symlink resolved, if that lies
    strictly inside ``root`` (itself resolved); ``ArtifactError`` otherwise."""
    base = root.resolve()
    real = (base / path).resolve()  # an absolute ``path`` replaces ``base`` in the join
    if real == base or not real.is_relative_to(base):
        raise ArtifactError(
            f"model path {str(path)!r} is outside the model directory: refused", reason="outside_root"
        )
    return real


def _read_regular(real: Path) -> bytes:
    """The bytes of the regular file ``real`` (no FIFO, device or directory, no symlink)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ArtifactError(f"model file {real.name!r} is missing", reason="missing") from None
    except OSError as exc:
        raise ArtifactError(
            f"model file {real.name!r} cannot be opened: {exc.strerror}", reason="not_a_file"
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"model path {real.name!r} is not a regular file", reason="not_a_file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _shown(real: Path, root: Path) -> str:
    """``real`` relative to ``root`` for messages (no absolute host paths in errors)."""
    try:
        return repr(str(real.relative_to(Path(root).resolve())))
    except ValueError:
        return repr(real.name)


def _json_default(value: Any) -> Any:
    """numpy scalars and the like, should one slip into a summary."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)
