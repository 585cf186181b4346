"""Failpoints: named places on the order path where a reliability test makes the process die
as ``kill -9`` would, to prove that a crash there loses and duplicates nothing (RELIABILITY.md).

``ALGO_FAILPOINTS="trading.after_send"`` arms one point; ``name@3`` fires on its third hit;
several are separated by commas. Unarmed (the default, and always in production: the settings
refuse them there) ``hit`` is one dictionary lookup. Firing sends SIGKILL to this process: no
cleanup, no flush, no ``finally`` blocks run, exactly like the real thing.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset(
    {
        "trading.after_intent_commit",
        "trading.after_send",
        "trading.after_ack",
        "trading.after_partial_fill",
        "outbox.before_publish",  # order events only (not the periodic reconciliation reports)
    }
)


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self._armed: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, nth = item.partition("@")
            if name not in POINTS:
                raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(POINTS))}")
            self._armed[name] = int(nth) if nth else 1
        self._hits: dict[str, int] = {}

    @property
    def armed(self) -> bool:
        return bool(self._armed)

    def hit(self, name: str) -> None:
        nth = self._armed.get(name)
        if nth is None:
            return
        count = self._hits.get(name, 0) + 1
        self._hits[name] = count
        if count >= nth:
            os.kill(os.getpid(), signal.SIGKILL)


NONE = Failpoints()
