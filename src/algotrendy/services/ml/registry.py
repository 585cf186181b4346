"""MLflow as the model registry: every trained version is an MLflow run and a registered model version.

    registry = MlflowRegistry(tracking_uri="sqlite:////data/ml/mlflow.db",
                              artifact_location="/data/ml/mlartifacts")
    run_id, registry_version = registry.log_version(owner=..., name="aapl-daily", version=3, ...)
    registry.set_serving(owner=..., name="aapl-daily", registry_version=registry_version)

The platform's database is the source of truth (status, stage, the model file and its hash, see
``artifacts``); MLflow is where people browse and compare what was trained: one run per version in
one experiment (parameters, metrics, the model file, ``summary.json``, ``features.txt``, the data
range), and one registered model per owner and lineage name whose ``serving`` alias follows the
version the platform serves.

**Blocking.** Every method does file or network I/O: the service calls them with
``asyncio.to_thread``. ``mlflow`` is imported on first use (it takes seconds to import), and only
``MlflowClient`` is used, never the ``mlflow.*`` fluent API and its process-global tracking URI: a
process may hold several registries (tests do). The client is built once per registry, under a
process-wide lock and, for SQLite, a lock file beside the database (``mlflow.db.init.lock``):
MLflow creates a SQL store's tables on first use, and threads or processes doing that at once
break each other's migrations.

**Stores.** ``tracking_uri`` is

- ``sqlite:////abs/path/mlflow.db`` (all-in-one): mlflow-skinny ships the SQLAlchemy tracking and
  registry stores (sqlalchemy and alembic are dependencies of the platform anyway). SQLite
  serialises writers; MLflow sets a 20 s ``busy_timeout``, so concurrent trainings wait rather than
  fail. Without ``artifact_location``, artifacts go to ``mlartifacts`` next to the database file
  (MLflow's own default would be ``./mlruns`` under the working directory);
- ``http(s)://host:5000`` (split mode): an MLflow tracking server. A server that cannot be reached
  comes out as ``TemporaryError``. MLflow retries HTTP requests itself with exponential backoff,
  7 times and with a 120 s timeout by default (minutes against a dead server). Those settings are
  process environment variables read at each request, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
  ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT``; the deployment sets
  them (e.g. 2, 1 and 10), since changing the environment per call is not thread-safe.

Names: ``registered_name(owner, name)`` is ``"<owner uuid>.<name>"``: unique per owner (the UUID
has a fixed length, so no two pairs give the same string) and readable in the MLflow UI. The
lineage name is checked against the API's pattern, which also keeps quotes out of the search
filters built from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from algotrendy.core.errors import AlgoTrendyError, ConfigurationError, Invalid, NotFound, TemporaryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["SERVING_ALIAS", "MlflowRegistry"]

SERVING_ALIAS = "serving"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_KEY_BAD_CHARS = re.compile(r"[^\w.\- ]")
_USERINFO = re.compile(r"//[^/@\s]*@")
_INIT_LOCK = threading.Lock()  # MLflow's SQL stores create their tables on first use: one at a time
_TEMPORARY_CODES = frozenset(
    {
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    }
)  # busy, or refusing the platform's credentials: either way unusable until it recovers or is fixed
_MISSING = "RESOURCE_DOES_NOT_EXIST"
_EXISTS = "RESOURCE_ALREADY_EXISTS"

# MLflow's limits (mlflow.utils.validation); a remote server enforces its own copy of them
_MAX_KEY = 250
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 5000
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000


class MlflowRegistry:
    """Trained versions as MLflow runs and registered model versions (blocking calls)."""

    def __init__(
        self, *, tracking_uri: str, artifact_location: str | None = None, experiment: str = "algotrendy"
    ) -> None:
        if not tracking_uri or not tracking_uri.strip():
            raise ConfigurationError("the MLflow tracking URI is empty")
        if not experiment or not experiment.strip():
            raise ConfigurationError("the MLflow experiment name is empty")
        self.tracking_uri = tracking_uri.strip()
        self.experiment = experiment.strip()
        self.artifact_location = _artifact_uri(artifact_location, self.tracking_uri)
        self._where = _redacted(self.tracking_uri)
        self._connected: tuple[MlflowClient, str] | None = None

    def __repr__(self) -> str:
        return f"MlflowRegistry({self._where}, experiment={self.experiment!r})"

    @staticmethod
    def registered_name(owner: uuid.UUID, name: str) -> str:
        """The registered model of one owner's lineage ``name``."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Invalid(f"model name {name!r} is not a valid lineage name", field="name")
        return f"{uuid.UUID(str(owner))}.{name}"

    # ---- versions ---------------------------------------------------------------------------------

    def log_version(
        self,
        *,
        owner: uuid.UUID,
        name: str,
        version: int,
        model_id: uuid.UUID,
        summary: dict[str, Any],
        artifact: Path,
        data_range: dict[str, str],
    ) -> tuple[str, str]:
        """Record one trained version: a finished run (tags, parameters, metrics, the model file,
        ``summary.json``, ``features.txt``) and a registered model version pointing at the run's
        copy of the model file. ``data_range`` entries become ``data_<key>`` tags (``start`` and
        ``end``: ``data_start``, ``data_end``). Returns ``(run_id, registry_version)``.

        Idempotent per ``model_id``: when a registered version of it exists already (a retry after
        the platform failed to record the answer), that version is returned, nothing is logged."""
        rname = self.registered_name(owner, name)
        artifact = Path(artifact)
        if not artifact.is_file():
            raise FileNotFoundError(f"model file {artifact} does not exist")
        tags = {
            "model_id": str(model_id),
            "owner": str(owner),
            "name": name,
            "version": str(version),
            "model_type": str(summary.get("model_type", "")),
            "registered_model": rname,
            **{k if k.startswith("data_") else f"data_{k}": str(v) for k, v in data_range.items()},
        }
        with self._errors(f"log version {version} of {name!r}"):
            client, experiment_id = self._connect()
            done = self._search_versions(client, rname, model_id=model_id)
            if done:
                return str(done[0].run_id), str(done[0].version)
            run = client.create_run(experiment_id, run_name=f"{name} v{version}", tags=_tag_values(tags))
            run_id = run.info.run_id
            try:
                self._log_run(client, run_id, summary=summary, artifact=artifact)
                source = f"{run.info.artifact_uri.rstrip('/')}/model/{artifact.name}"
                registry_version = self._register(
                    client, rname, owner=owner, name=name, model_id=model_id, version=version,
                    source=source, run_id=run_id,
                )  # fmt: skip
            except BaseException:
                with contextlib.suppress(Exception):  # best effort: the original error matters more
                    client.set_terminated(run_id, "FAILED")
                raise
            client.set_terminated(run_id, "FINISHED")
        return run_id, registry_version

    def delete_version(self, *, owner: uuid.UUID, name: str, registry_version: str) -> None:
        """Delete one registered model version (nothing to do if it is gone), and the registered
        model with it once no version is left. The run stays in the experiment's history."""
        rname = self.registered_name(owner, name)
        with self._errors(f"delete version {registry_version} of {name!r}"):
            client = self._client()
            with _ignore(_MISSING):
                client.delete_model_version(rname, str(registry_version))
            if not self._search_versions(client, rname):
                with _ignore(_MISSING):
                    client.delete_registered_model(rname)

    def versions(self, *, owner: uuid.UUID, name: str) -> list[dict[str, Any]]:
        """The registered versions of one lineage, oldest first: ``version``, ``run_id``,
        ``aliases`` and ``tags`` each. Empty if the lineage was never registered."""
        rname = self.registered_name(owner, name)
        with self._errors(f"list the versions of {name!r}"):
            client = self._client()
            found = self._search_versions(client, rname)
            aliases = self._aliases(client, rname) if found else {}
        by_version: dict[str, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(str(v), []).append(alias)
        out = [
            {
                "version": str(mv.version),
                "run_id": mv.run_id,
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "tags": dict(mv.tags or {}),
            }
            for mv in found
        ]
        return sorted(out, key=lambda v: int(v["version"]) if v["version"].isdigit() else 0)

    # ---- serving ----------------------------------------------------------------------------------

    def set_serving(self, *, owner: uuid.UUID, name: str, registry_version: str) -> None:
        """Point the ``serving`` alias at ``registry_version`` (moving it from any other)."""
        rname = self.registered_name(owner, name)
        with self._errors(f"mark version {registry_version} of {name!r} as serving"):
            client = self._client()
            try:
                client.set_registered_model_alias(rname, SERVING_ALIAS, str(registry_version))
            except Exception as exc:
                if _code(exc) == _MISSING:
                    raise NotFound(
                        f"the model registry has no version {registry_version} of {name!r}"
                    ) from exc
                raise

    def clear_serving(self, *, owner: uuid.UUID, name: str) -> None:
        """Drop the ``serving`` alias (nothing to do if there is none)."""
        rname = self.registered_name(owner, name)
        with self._errors(f"clear the serving version of {name!r}"), _ignore(_MISSING):
            self._client().delete_registered_model_alias(rname, SERVING_ALIAS)

    def serving_version(self, *, owner: uuid.UUID, name: str) -> str | None:
        """The registered version the ``serving`` alias points at, if any."""
        rname = self.registered_name(owner, name)
        with self._errors(f"read the serving version of {name!r}"):
            version = self._aliases(self._client(), rname).get(SERVING_ALIAS)
        return None if version is None else str(version)

    # ---- MLflow plumbing --------------------------------------------------------------------------

    def _client(self) -> MlflowClient:
        return self._connect()[0]

    def _connect(self) -> tuple[MlflowClient, str]:
        """The client and the experiment's id, set up once (the first call creates a SQL store's
        tables and the experiment; a failed setup is retried by the next call)."""
        if self._connected is None:
            with _INIT_LOCK, _file_lock(_sqlite_file(self.tracking_uri)):
                if self._connected is None:
                    from mlflow import MlflowClient

                    client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                    self._connected = (client, self._ensure_experiment(client))
        return self._connected

    def _ensure_experiment(self, client: MlflowClient) -> str:
        """The experiment's id: created if missing, restored if someone deleted it."""
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return str(
                    client.create_experiment(self.experiment, artifact_location=self.artifact_location)
                )
            except Exception as exc:
                if _code(exc) != _EXISTS:  # created by another process meanwhile
                    raise
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise TemporaryError(f"MLflow experiment {self.experiment!r} vanished while being created")
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)

    def _log_run(
        self, client: MlflowClient, run_id: str, *, summary: Mapping[str, Any], artifact: Path
    ) -> None:
        from mlflow.entities import Metric, Param

        for chunk in _chunks(sorted(run_params(summary).items()), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=[Param(k, v) for k, v in chunk])
        now = int(time.time() * 1000)
        metrics = run_metrics(summary.get("metrics") or {})
        for chunk in _chunks(sorted(metrics.items()), _METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in chunk])
        client.log_artifact(run_id, str(artifact), artifact_path="model")
        with tempfile.TemporaryDirectory(prefix="algotrendy-mlflow-") as tmp:
            summary_file = Path(tmp) / "summary.json"
            summary_file.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
            features_file = Path(tmp) / "features.txt"
            features = summary.get("feature_names") or []
            features_file.write_text("".join(f"{f}\n" for f in features))
            client.log_artifact(run_id, str(summary_file))
            client.log_artifact(run_id, str(features_file))

    def _register(
        self,
        client: MlflowClient,
        rname: str,
        *,
        owner: uuid.UUID,
        name: str,
        model_id: uuid.UUID,
        version: int,
        source: str,
        run_id: str,
    ) -> str:
        """A new version of ``rname`` (created if missing). Retried once when the registered model
        disappears in between (its last version deleted concurrently)."""
        for attempt in (1, 2):
            with _ignore(_EXISTS):
                client.create_registered_model(
                    rname,
                    tags={"owner": str(owner), "name": name},
                    description=f"AlgoTrendy model {name!r} of user {owner}",
                )
            try:
                mv = client.create_model_version(
                    rname,
                    source=source,
                    run_id=run_id,
                    tags={"model_id": str(model_id), "version": str(version)},
                )
            except Exception as exc:
                if attempt == 1 and _code(exc) == _MISSING:
                    continue
                raise
            return str(mv.version)
        raise TemporaryError(f"registered model {rname!r} was deleted while adding a version")  # unreachable

    def _search_versions(
        self, client: MlflowClient, rname: str, *, model_id: uuid.UUID | None = None
    ) -> list[Any]:
        """The versions of ``rname`` (those of one ``model_id`` when given), every page. Both
        values are validated (name pattern, UUID), so neither can carry a quote into the filter."""
        query = f"name='{rname}'" + (
            "" if model_id is None else f" and tags.model_id='{uuid.UUID(str(model_id))}'"
        )
        found: list[Any] = []
        token: str | None = None
        while True:
            page = client.search_model_versions(query, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _aliases(self, client: MlflowClient, rname: str) -> dict[str, str]:
        try:
            model = client.get_registered_model(rname)
        except Exception as exc:
            if _code(exc) == _MISSING:
                return {}
            raise
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn an unreachable or busy store into ``TemporaryError``; the rest propagates."""
        try:
            yield
        except AlgoTrendyError:
            raise
        except Exception as exc:
            if _is_temporary(exc):
                raise TemporaryError(
                    f"the model registry (MLflow at {self._where}) is unavailable: could not {action}: "
                    f"{_first_line(exc)}"
                ) from exc
            raise


# ---- what a run records --------------------------------------------------------------------------


def run_params(summary: Mapping[str, Any]) -> dict[str, str]:
    """The run's parameters: the training config flattened (``label.horizon``, ``features`` ...;
    its ``hyperparams`` are the user's fixed ones, named in ``fixed_hyperparams``) and the fitted
    parameters as ``hyperparams.<name>``. Keys and values cut to MLflow's limits."""
    config = dict(summary.get("config") or {})
    fixed = config.pop("hyperparams", None) or {}
    flat = _flatten(config)
    if fixed:
        flat["fixed_hyperparams"] = ",".join(sorted(str(k) for k in fixed))
    flat.update(_flatten(summary.get("params") or {}, prefix="hyperparams"))
    out: dict[str, str] = {}
    for key, value in flat.items():
        k = _key(key)
        if k not in out:  # two long keys may cut to the same 250 characters: keep the first
            out[k] = _text(value)[:_MAX_PARAM_VALUE]
    return out


def run_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number in ``metrics``, keyed by its path (``holdout.model.accuracy``)."""
    out: dict[str, float] = {}
    for key, value in _flatten(metrics).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out.setdefault(_key(key), float(value))
    return out


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to ``a.b.c`` keys; anything else (lists included) is a leaf."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _key(key: str) -> str:
    """A valid MLflow param/metric key: no characters it rejects, no path-like ``..``, 250 at most."""
    k = _KEY_BAD_CHARS.sub("_", key).replace("..", "._")
    if k.startswith("."):
        k = "_" + k
    return k[:_MAX_KEY] or "_"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _tag_values(tags: Mapping[str, str]) -> dict[str, str]:
    return {_key(k): v[:_MAX_TAG_VALUE] for k, v in tags.items()}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---- errors and URIs -----------------------------------------------------------------------------


def _code(exc: BaseException) -> str | None:
    """MLflow's error code (``RESOURCE_DOES_NOT_EXIST`` ...) of an ``MlflowException``."""
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


@contextlib.contextmanager
def _ignore(code: str) -> Iterator[None]:
    """Swallow an MLflow error with this code (idempotent creates and deletes)."""
    try:
        yield
    except Exception as exc:
        if _code(exc) != code:
            raise


def _is_temporary(exc: BaseException) -> bool:
    """Network trouble (requests' errors are ``OSError``s, wrapped by MLflow as the context of
    its ``MlflowException``), a busy or locked database, or a server saying "try later"."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) or _code(e) in _TEMPORARY_CODES:
            return True
        if type(e).__name__ == "OperationalError":  # sqlalchemy/sqlite3: locked, disk I/O, gone away
            return True
        e = e.__cause__ or e.__context__
    return False


def _first_line(exc: BaseException) -> str:
    """The error's first line, without credentials of any URL in it (``//user:password@``)."""
    lines = str(exc).strip().splitlines()
    return _USERINFO.sub("//", lines[0] if lines else type(exc).__name__)[:300]


def _redacted(uri: str) -> str:
    """The URI without credentials or query (for messages and logs)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return parts.scheme or "file"


def _artifact_uri(location: str | None, tracking_uri: str) -> str | None:
    """Where new experiments keep artifacts: a local path as a ``file://`` URI, any other URI as
    given; for a SQLite store without one, ``mlartifacts`` next to the database file."""
    if location:
        loc = location.strip()
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", loc) and not re.match(r"^[A-Za-z]:[\\/]", loc):
            return loc
        return Path(loc).expanduser().resolve().as_uri()
    db = _sqlite_file(tracking_uri)
    return None if db is None else (db.parent / "mlartifacts").as_uri()


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and in-memory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if not db or db == ":memory:" else Path(db).expanduser().resolve()


@contextlib.contextmanager
def _file_lock(db: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.init.lock`` beside a SQLite database: processes that
    start together would otherwise all run MLflow's table migrations at once and break them."""
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with db.with_name(db.name + ".init.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
