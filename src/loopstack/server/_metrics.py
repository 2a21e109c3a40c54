"""Prometheus metrics for the server: requests, errors and latency per route.

Requests are labelled by route template (``/api/v1/runs/{run_id}``), never by the path
they asked for, and no metric is kept per project, so the counters name no project's
objects and any caller with a role may read them. The monitor gauges that ``/metrics``
adds (``loopstack.monitoring.monitor_metrics``) are those of the caller's project only.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["MetricsMiddleware", "ServerMetrics"]


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loopstack_http_requests_total",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "loopstack_http_errors_total",
            "HTTP requests answered with a 4xx or 5xx status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loopstack_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def render(self) -> bytes:
        """This process's metrics; with several workers, the sum over all of them."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task overhead) that records every HTTP request."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            code = str(status["code"])
            self.metrics.requests.labels(method, label, code).inc()
            if status["code"] >= 400:
                self.metrics.errors.labels(method, label, code).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - start)
