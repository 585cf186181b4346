"""Errors that services raise; only the gateway turns them into HTTP (RFC 9457).

    AlgoTrendyError                 base: never raised directly
    ├── NotFound                    404: the object does not exist *for this caller*
    ├── Conflict                    409: the request clashes with the current state
    ├── Forbidden                   403: authenticated but not allowed
    ├── Unauthorized                401: no valid credentials (token, password, 2FA code)
    ├── Invalid                     422: well-formed request whose content is wrong (names the field)
    ├── TooManyRequests             429: a limit was hit; ``retry_after`` seconds until it resets
    ├── TemporaryError              503: a dependency is down; the caller may retry
    └── ConfigurationError          refuses to start: settings are unsafe or inconsistent

Grouped by how a caller reacts: fix the request (Invalid, NotFound, Conflict), authenticate
(Unauthorized), stop (Forbidden), wait (TooManyRequests, TemporaryError).
"""

from __future__ import annotations


class AlgoTrendyError(Exception):
    """Base of every domain error. ``code`` is a stable machine-readable slug."""

    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.field = field


class NotFound(AlgoTrendyError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AlgoTrendyError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Forbidden(AlgoTrendyError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Unauthorized(AlgoTrendyError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Invalid(AlgoTrendyError):
    status = 422
    code = "invalid"
    title = "Invalid request"


class TooManyRequests(AlgoTrendyError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = max(1, int(retry_after + 0.999))


class TemporaryError(AlgoTrendyError):
    status = 503
    code = "temporarily_unavailable"
    title = "Temporarily unavailable"


class ConfigurationError(AlgoTrendyError):
    code = "configuration_error"
    title = "Configuration error"
