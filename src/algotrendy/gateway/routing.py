"""Skip whole routers whose paths cannot match a request, before FastAPI tries their routes.

FastAPI (0.165) keeps each ``include_router`` as one entry of the app's route list and matches
a request by trying every route regex of every included router in turn until one matches. A
path served by the last router (``/api/v1/ml/...``) therefore ran the regexes of all ~300
routes before it: measured on the 2-core machine of ``bench/README.md``, 0.62 ms per request for
``POST /api/v1/ml/models/{id}/predict`` against 0.04 ms for ``/auth/me``, the sixth entry.

A route's regex is anchored at the start of the path, so a request can only match a route
whose static part (the path up to its first ``{``) starts the request's path. ``index`` gives
each included router a ``matches`` that first checks the request against the static prefixes
of all its routes (one ``str.startswith`` with a tuple, in C) and answers ``Match.NONE`` at
once when none fits; otherwise FastAPI's own matching runs unchanged, so the router it picks,
path parameters, 405s and slash redirects stay FastAPI's. Routers whose routes have no plain
``path`` (a mount with a host, say) are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from starlette._utils import get_route_path  # the same path FastAPI matches on
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

Matcher = Callable[[Scope], tuple[Match, Scope]]


def static_prefix(path: str) -> str:
    """The part of a route path before its first parameter: every matching path starts with it."""
    return path.split("{", 1)[0]


def prefixes(routes: Iterable[BaseRoute]) -> tuple[str, ...] | None:
    """The static prefixes of ``routes`` (nested included routers too); None if one has no path."""
    found: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            nested = prefixes(inner.routes)
            if nested is None:
                return None
            context = getattr(route, "include_context", None)
            outer = getattr(context, "prefix", "") or ""
            found.update(outer + p for p in nested)
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            return None
        found.add(static_prefix(path))
    return tuple(sorted(found))


def guarded(matches: Matcher, allowed: tuple[str, ...]) -> Matcher:
    def match(scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket") and not get_route_path(scope).startswith(allowed):
            return Match.NONE, {}
        return matches(scope)

    return match


def index(app: FastAPI) -> int:
    """Guard each included router of ``app``; returns how many were guarded."""
    count = 0
    for route in app.router.routes:
        inner: Any = getattr(route, "original_router", None)
        if inner is None:
            continue  # a plain route: one regex, nothing to skip
        allowed = prefixes([route])
        if allowed is None:
            continue
        route.matches = guarded(route.matches, allowed)  # type: ignore[method-assign,assignment]
        count += 1
    return count
