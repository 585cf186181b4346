"""``IndicatorCache``: indicator outputs shared across a parameter sweep."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from algotrendy.core.market import F64, Bars

# ---- the cache ----------------------------------------------------------------------------------

CacheKey = tuple[int, str, str, tuple[float | int, ...]]


class IndicatorCache:
    """Indicator outputs keyed by ``(bars slot, function, input key, resolved params)``.

    One cache serves a whole sweep (and several symbols): each distinct ``Bars`` object gets a
    slot, and the cache holds a reference to it so its ``id`` cannot be reused while cached.
    Stored arrays are read-only. ``max_entries`` bounds it (least recently used dropped first).
    ``hits``/``misses`` count lookups; a miss is one computation.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[CacheKey, dict[str, F64]] = OrderedDict()
        self._slots: dict[int, tuple[Bars, int]] = {}
        self.hits = 0
        self.misses = 0

    def slot(self, bars: Bars) -> int:
        entry = self._slots.get(id(bars))
        if entry is None or entry[0] is not bars:
            entry = self._slots[id(bars)] = (bars, len(self._slots))
        return entry[1]

    def get_or_compute(self, key: CacheKey, compute: Callable[[], dict[str, F64]]) -> dict[str, F64]:
        found = self._data.get(key)
        if found is not None:
            self.hits += 1
            self._data.move_to_end(key)
            return found
        self.misses += 1
        value = compute()
        for arr in value.values():
            arr.flags.writeable = False
        self._data[key] = value
        if self.max_entries is not None and len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> list[CacheKey]:
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._slots.clear()
