"""Prometheus metrics every service exposes on `/metrics`.

Each service is its own process, so the default registry holds exactly that service's metrics.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "tokenhub_http_requests_total",
    "HTTP requests served, by route and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "tokenhub_http_request_duration_seconds",
    "Time to serve an HTTP request, by route.",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BACKEND_ERRORS = Counter(
    "tokenhub_backend_unavailable_total",
    "Internal calls that failed because the target did not answer.",
    ["target"],
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
