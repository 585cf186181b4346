"""Wiring of the jobs service (executor choice: local process pool or Ray)."""

from __future__ import annotations

from typing import Any


def build_jobs(container: Any) -> None:
    """Placeholder until the jobs service lands: nothing to build yet."""
    return None
