"""RFC 9457 problem details: the only place errors become HTTP.

Every error body is ``application/problem+json`` with ``type`` (``urn:algotrendy:problem:<code>``),
``title``, ``status``, ``detail``, ``code``, ``request_id`` and, for 422, ``errors`` naming each bad
field. 500s say nothing about internals.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from algotrendy.core.errors import AlgoTrendyError, TooManyRequests, Unauthorized

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    *,
    detail: str,
    code: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    code = code or _title(status).lower().replace(" ", "_").replace("-", "_")
    body: dict[str, Any] = {
        "type": f"urn:algotrendy:problem:{code}",
        "title": title or _title(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AlgoTrendyError)
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if exc.code != "missing_token" else "Bearer"
        )
    extra: dict[str, Any] = {}
    if exc.field:
        extra["errors"] = [{"field": exc.field, "message": exc.detail, "type": exc.code}]
    status = exc.status if exc.status != 500 else 500
    return problem(
        status, detail=exc.detail, code=exc.code, title=exc.title, headers=headers or None, **extra
    )


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _loc(e.get("loc", ())), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem(422, detail=detail, code="validation_error", title="Invalid request", errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    code = "payload_too_large" if exc.status_code == 413 else None
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request.app.router.routes, request.url.path))
    return problem(exc.status_code, detail=detail, code=code, headers=headers or None)


def _allowed_methods(routes: list[Any], path: str) -> list[str]:
    """Every method of the resource at ``path`` (Starlette names only the first route's). When a
    route with a literal path matches, routes with parameters (``/{symbol}``) do not count."""
    literal: set[str] = set()
    templated: set[str] = set()
    for route in _flat(routes):
        if getattr(route, "methods", None) and route.path_regex.match(path):
            (templated if route.param_convertors else literal).update(route.methods)
    return sorted(literal or templated)


def _flat(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI nests included routers
        out.extend(_flat(included.routes) if included is not None else [route])
    return out


async def _unhandled(_request: Request, exc: Exception) -> Response:
    log.error("http.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
    # This handler runs outside the edge middleware, so it stamps the request id itself.
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return problem(
        500,
        detail="An unexpected error occurred; it has been logged.",
        code="internal_error",
        headers={"X-Request-ID": str(request_id)} if request_id else None,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AlgoTrendyError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": _title(code),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for code in (400, 401, 403, 404, 409, 413, 422, 429)
}
