"""The router guard: same route chosen as FastAPI's own matching, other routers never tried."""

from __future__ import annotations

import inspect
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Match

from algotrendy.app.asgi import create_app
from algotrendy.gateway import routing
from tests.apphelp import make_settings


def _scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "path": path,
        "method": method,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }


def _select(routes: list[BaseRoute], scope: dict[str, Any], *, guarded: bool) -> tuple[int, Match] | None:
    """The root router's choice: the first FULL match, else the first PARTIAL one."""
    partial = None
    for i, route in enumerate(routes):
        match, _ = route.matches(scope) if guarded else type(route).matches(route, scope)
        if match == Match.FULL:
            return i, match
        if match == Match.PARTIAL and partial is None:
            partial = (i, match)
    return partial


def _concrete(path: str) -> str:
    path = re.sub(r"\{[^}]+:uuid\}", str(uuid.UUID(int=7)), path)
    path = re.sub(r"\{[^}]+:path\}", "a/b", path)
    return re.sub(r"\{[^}]+\}", "x1", path)


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found.extend(_api_routes(inner.routes))
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def test_every_route_of_the_app_is_chosen_as_fastapi_chooses_it(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    routes = app.router.routes
    assert sum(isinstance(r.__dict__.get("matches"), type(lambda: 0)) for r in routes) >= 10
    api = _api_routes(routes)
    assert len(api) > 100
    paths = {_concrete(r.path) for r in api}
    # Near misses too: trailing slashes, unknown tails, other methods.
    paths |= {p + "/" for p in list(paths)} | {p + "/zz" for p in list(paths)} | {"/", "/nope", "/api/v1/"}
    for path in sorted(paths):
        for method in ("GET", "POST", "PUT", "DELETE"):
            scope = _scope(path, method)
            assert _select(routes, scope, guarded=True) == _select(routes, scope, guarded=False), (
                method,
                path,
            )


def _two_router_app() -> tuple[FastAPI, list[str]]:
    tried: list[str] = []
    first, second = APIRouter(prefix="/one"), APIRouter(prefix="/two")

    @first.get("/items/{item_id}")
    def one(item_id: int) -> dict[str, int]:
        return {"one": item_id}

    @second.get("/items/{item_id}")
    def two(item_id: int) -> dict[str, int]:
        return {"two": item_id}

    @second.post("/items")
    def make() -> dict[str, str]:
        return {"made": "yes"}

    app = FastAPI()
    app.include_router(first)
    app.include_router(second)
    for route, name in zip(app.router.routes[-2:], ("one", "two"), strict=True):
        original = route.matches

        def spy(scope: Any, original: Any = original, name: str = name) -> Any:
            tried.append(name)
            return original(scope)

        route.matches = spy  # type: ignore[method-assign]
    assert routing.index(app) == 2
    return app, tried


def test_a_router_whose_prefixes_cannot_match_is_not_tried() -> None:
    app, tried = _two_router_app()
    client = TestClient(app)
    assert client.get("/two/items/5").json() == {"two": 5}
    assert tried == ["two"]  # the first router was skipped without running its regexes
    tried.clear()
    assert client.get("/one/items/3").json() == {"one": 3}
    assert tried[0] == "one"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("DELETE", "/two/items/5", 405), ("GET", "/two/items/abc", 422)],
)
def test_errors_stay_fastapis(method: str, path: str, status: int) -> None:
    app, _ = _two_router_app()
    assert TestClient(app).request(method, path).status_code == status


def test_prefixes_are_the_static_parts_and_pathless_routes_opt_out() -> None:
    assert routing.static_prefix("/api/v1/orders/{order_id:uuid}/cancel") == "/api/v1/orders/"
    assert routing.static_prefix("/health") == "/health"

    class NoPath(BaseRoute):
        pass

    assert routing.prefixes([NoPath()]) is None


def test_no_route_pays_a_thread_hop_for_a_sync_dependency(tmp_path: Path) -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in its thread pool on every request."""
    app = create_app(make_settings(tmp_path))
    sync: set[str] = set()

    def visit(dependant: Any) -> None:
        for sub in dependant.dependencies:
            call = sub.call
            if call is not None and not (
                inspect.iscoroutinefunction(call)
                or inspect.iscoroutinefunction(getattr(call, "__call__", None))
            ):
                sync.add(f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', call)}")
            visit(sub)

    routes = _api_routes(app.router.routes)
    for route in routes:
        if not inspect.iscoroutinefunction(route.endpoint):
            sync.add(route.path)
        visit(route.dependant)
    assert len(routes) > 100
    assert not sync, sorted(sync)
