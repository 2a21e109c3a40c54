"""Monitored values as Prometheus gauges, read from the alert rules at scrape time.

Each alert rule's latest evaluated value, its threshold, when it was last evaluated
and whether it fires now, for one project, so a Prometheus scraping the server's
``/metrics`` graphs and alerts on what loopstack monitors (drift, performance, KPIs)
beside the request metrics. ``MonitorCollector`` reads the rules and their state in
one query per scrape; nothing is cached, so a value is as fresh as its last window.

Series are labelled by ``rule`` and ``metric`` (the monitored metric's own name, in
its own unit), plus the rule's labels (``endpoint``, ...); ``loopstack_monitor_alert_firing``
also carries the rule's ``severity`` and ``category``. A rule label that Prometheus
reserves (``__``-prefixed) or that repeats one of these names is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from loopstack.monitoring._alert_store import AlertStore
    from loopstack.store import Stores

__all__ = ["MonitorCollector", "monitor_metrics"]

_FIXED = ("rule", "metric", "severity", "category")


class MonitorCollector(Collector):
    """A ``prometheus_client`` collector of the alert rules of one project.

    >>> registry = CollectorRegistry()                               # doctest: +SKIP
    >>> registry.register(MonitorCollector(AlertStore(open_stores())))  # doctest: +SKIP
    >>> generate_latest(registry)                                    # doctest: +SKIP
    b'# HELP loopstack_monitor_value ...'
    """

    def __init__(self, store: AlertStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        """Nothing up front: registering the collector must not query the database."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges of every rule, from one read of the rules and their state."""
        value = _gauge(
            "loopstack_monitor_value",
            "The monitored metric's value at the rule's latest evaluation window",
        )
        threshold = _gauge(
            "loopstack_monitor_threshold", "The threshold the rule compares the metric against"
        )
        evaluated = _gauge(
            "loopstack_monitor_last_evaluated_timestamp_seconds",
            "When the rule was last evaluated (Unix time)",
        )
        firing = _gauge("loopstack_monitor_alert_firing", "1 while the rule's alert fires, else 0")
        for rule, state in self.store.rule_states():
            extra = {
                k: v for k, v in sorted(rule.labels.items()) if k not in _FIXED and k[:2] != "__"
            }
            labels = {"rule": rule.name, "metric": rule.metric, **extra}
            threshold.add_sample(threshold.name, labels, float(rule.threshold))
            firing.add_sample(
                firing.name,
                {**labels, "severity": rule.severity, "category": rule.category},
                1.0 if state.firing_since is not None else 0.0,
            )
            if state.last_value is not None:
                value.add_sample(value.name, labels, float(state.last_value))
            if state.last_evaluated is not None:
                evaluated.add_sample(evaluated.name, labels, float(state.last_evaluated))
        yield from (value, threshold, evaluated, firing)


def _gauge(name: str, documentation: str) -> Metric:
    # a plain Metric, not a GaugeMetricFamily: its samples' label names may differ
    # from rule to rule (each rule brings its own labels)
    return Metric(name, documentation, "gauge")


def monitor_metrics(stores: Stores, *, project_id: int = 0) -> bytes:
    """The monitor gauges of one project in the Prometheus text format.

    >>> print(monitor_metrics(open_stores()).decode())               # doctest: +SKIP
    # HELP loopstack_monitor_value ...
    """
    from loopstack.monitoring._alert_store import AlertStore

    registry = CollectorRegistry()
    registry.register(MonitorCollector(AlertStore(stores, project_id=project_id)))
    return generate_latest(registry)
