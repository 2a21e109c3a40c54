"""Prometheus metrics of the serving path, per endpoint, model version and arm.

Counters and histograms are summed over worker processes by ``prometheus_client``'s
multi-process mode (``PROMETHEUS_MULTIPROC_DIR``); the queue depth is a gauge summed
over the live workers. Shadow arms are compared row by row with the primary: the
agreement rate is ``shadow_agreements_total / shadow_compared_rows_total`` and the mean
score difference ``shadow_score_diff_total / shadow_compared_rows_total`` (the mean
absolute difference of the probabilities, or of the values of a regressor, per row).

Label children are looked up once per (endpoint, version, arm) and kept, so a request
pays a dictionary lookup and a few increments.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServingMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_ANSWER = ("endpoint", "model_version", "arm")


class ServingMetrics:
    """The serving metrics, registered in ``registry`` (a ``CollectorRegistry``)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Counter(name, doc, list(labels), registry=registry)

        self.requests = counter(
            "loopstack_serving_requests_total", "Predictions answered (any status)", _ANSWER
        )
        self.errors = counter(
            "loopstack_serving_errors_total",
            "Predictions that failed, by the status answered",
            (*_ANSWER, "status"),
        )
        self.latency = Histogram(
            "loopstack_serving_latency_seconds",
            "Time from a prediction's input to its outputs (queue and model call)",
            list(_ANSWER),
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "loopstack_serving_batch_size",
            "Requests per model call",
            ["model"],
            registry=registry,
            buckets=_BATCH_BUCKETS,
        )
        self.queue_depth = Gauge(
            "loopstack_serving_queue_depth",
            "Requests waiting for a model call",
            ["model"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.shadow_rows = counter(
            "loopstack_serving_shadow_compared_rows_total",
            "Rows a shadow arm answered beside the primary",
            _ANSWER,
        )
        self.shadow_agreements = counter(
            "loopstack_serving_shadow_agreements_total",
            "Rows where the shadow's label (or value) equalled the primary's",
            _ANSWER,
        )
        self.shadow_score_diff = counter(
            "loopstack_serving_shadow_score_diff_total",
            "Sum over compared rows of the mean absolute score difference",
            _ANSWER,
        )
        self.shadow_failures = counter(
            "loopstack_serving_shadow_failures_total",
            "Shadow copies that failed or were dropped (backlog full)",
            (*_ANSWER, "reason"),
        )
        self.log_dropped = counter(
            "loopstack_serving_prediction_log_dropped_total",
            "Prediction-log rows dropped (buffer full, or trimmed after failed flushes)",
            (),
        )
        self._answers: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def answer(self, endpoint: str, version: str | None, arm: str | None) -> tuple[Any, Any]:
        """(requests counter, latency histogram) children of one endpoint/version/arm."""
        key = (endpoint, version or "", arm or "")
        found = self._answers.get(key)
        if found is None:
            found = (self.requests.labels(*key), self.latency.labels(*key))
            self._answers[key] = found
        return found

    def error(self, endpoint: str, version: str | None, arm: str | None, status: int) -> None:
        """Count one failed prediction, and its request."""
        key = (endpoint, version or "", arm or "")
        self.requests.labels(*key).inc()
        self.errors.labels(*key, str(status)).inc()
