"""structlog configuration: JSON lines with request_id/trace_id, and redaction.

Every log line, ours or a library's (routed through the same processors), passes ``redact``:
values under secret-looking keys are dropped, JWTs and ``token=`` query values are replaced,
and email addresses are masked to ``a***@example.com``. The test suite captures all log output
and asserts no password, token or full email survives.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "otp",
    "totp",
    "recovery_code",
    "credential",
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_TOKEN_PARAM = re.compile(r"(?i)((?:token|code|key|secret|password)=)[^&\s\"']+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_ARGON = re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9=,$+/.-]+")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def _scrub_text(value: str) -> str:
    if "eyJ" in value:
        value = _JWT.sub("[jwt]", value)
    if "=" in value:
        value = _TOKEN_PARAM.sub(r"\1[redacted]", value)
    if "earer" in value:
        value = _BEARER.sub(r"\1[redacted]", value)
    if "$argon2" in value:
        value = _ARGON.sub("[password-hash]", value)
    if "@" in value:
        value = _EMAIL.sub(r"\1***@\2", value)
    return value


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 5:
        return value
    if isinstance(value, dict):
        return {k: ("[redacted]" if _secret_key(k) else _scrub(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _secret_key(key: object) -> bool:
    k = str(key).lower()
    return any(part in k for part in _SECRET_KEY_PARTS)


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if _secret_key(key):
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _trace_ids(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    try:
        from opentelemetry import trace
    except ImportError:  # the otel extra is not installed
        return event_dict
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _trace_ids,
        structlog.processors.format_exc_info,
        redact,
    ]


def make_formatter(*, json_format: bool = True) -> logging.Formatter:
    """The formatter every handler uses: same processors, same redaction."""
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if json_format
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def configure_logging(*, level: str = "INFO", json_format: bool = True) -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(json_format=json_format))
    handler.set_name("algotrendy")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "algotrendy"]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the edge middleware writes access lines
    for noisy in ("aiosqlite", "asyncio", "sqlalchemy.engine", "nats", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
