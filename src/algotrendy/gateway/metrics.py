"""Prometheus metrics: HTTP by route template and status, plus business counters.

Module-level collectors on the default registry, as Prometheus clients expect; ``/metrics``
renders them. Route labels are templates (``/api/v1/users/{user_id}``), never raw paths, so
cardinality stays bounded.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter("algotrendy_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "algotrendy_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("algotrendy_rate_limited_total", "Requests refused by a rate limit", ["scope"])
LOGINS = Counter("algotrendy_logins_total", "Login attempts", ["result"])
REGISTRATIONS = Counter("algotrendy_users_registered_total", "Users registered")
EVENTS_PUBLISHED = Counter("algotrendy_events_published_total", "Events published", ["event_type"])
JOBS = Counter("algotrendy_jobs_total", "Jobs finished", ["kind", "status"])
EMAILS = Counter("algotrendy_emails_total", "Emails handed to the mail backend", ["result"])


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
