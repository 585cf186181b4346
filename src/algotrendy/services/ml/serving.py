"""Models in memory for inference: a bounded LRU of loaded ``Predictor``s, and which version
serves each lineage name.

Completed model rows are kept for ``ttl`` seconds too, so a prediction needs no database read.
Loading a model (reading and hash-checking its file, unpickling, preparing the fast path) happens
once per version and process, in a thread, under a per-version lock so concurrent first requests
load it once. A promotion loads the new version *before* it swaps the name's entry; a request
holds the ``Predictor`` it started with, so nothing in flight is dropped or mixed. Another
process learns of a promotion by re-reading the serving row when its entry is older than
``ttl`` seconds (the registry rows are the truth; this is a cache of them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from algotrendy.services.ml.inference import Predictor

Key = tuple[uuid.UUID, str]


class ModelCache:
    def __init__(self, *, max_models: int, ttl: float = 2.0) -> None:
        self._max = max_models
        self._ttl = ttl
        self._lru: OrderedDict[uuid.UUID, Predictor] = OrderedDict()
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._serving: dict[Key, tuple[uuid.UUID | None, float]] = {}
        self._rows: dict[uuid.UUID, tuple[Any, float]] = {}

    def peek(self, model_id: uuid.UUID) -> Predictor | None:
        found = self._lru.get(model_id)
        if found is not None:
            self._lru.move_to_end(model_id)
        return found

    async def get(self, model_id: uuid.UUID, load: Callable[[], Predictor]) -> Predictor:
        """The loaded version, loading it (``load`` runs in a thread) on a miss."""
        found = self.peek(model_id)
        if found is not None:
            return found
        lock = self._locks.setdefault(model_id, asyncio.Lock())
        async with lock:
            found = self.peek(model_id)
            if found is None:
                found = await asyncio.to_thread(load)
                self._lru[model_id] = found
                while len(self._lru) > self._max:
                    self._lru.popitem(last=False)
        if not lock.locked():
            self._locks.pop(model_id, None)
        return found

    def evict(self, model_id: uuid.UUID) -> None:
        self._lru.pop(model_id, None)
        self._rows.pop(model_id, None)
        for key, (mid, _at) in list(self._serving.items()):
            if mid == model_id:
                del self._serving[key]

    # ---- which version serves a name ------------------------------------------------------------

    def serving(self, key: Key) -> tuple[bool, uuid.UUID | None]:
        """``(known, model_id)``: ``known`` is False when the entry is missing or too old."""
        entry = self._serving.get(key)
        if entry is None or time.monotonic() - entry[1] > self._ttl:
            return False, None
        return True, entry[0]

    def set_serving(self, key: Key, model_id: uuid.UUID | None) -> None:
        self._serving[key] = (model_id, time.monotonic())

    # ---- completed model rows (what a prediction reads besides the model) -----------------------

    def row(self, model_id: uuid.UUID) -> Any | None:
        """A completed version's row read less than ``ttl`` seconds ago (None otherwise): spares
        each prediction a database read; a deletion elsewhere shows within ``ttl``."""
        entry = self._rows.get(model_id)
        if entry is None or time.monotonic() - entry[1] > self._ttl:
            return None
        return entry[0]

    def put_row(self, row: Any) -> None:
        if len(self._rows) >= 4 * self._max:
            self._rows.clear()
        self._rows[row.id] = (row, time.monotonic())
