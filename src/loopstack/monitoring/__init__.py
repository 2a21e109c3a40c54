"""Monitoring: drift between a reference and a window of predictions, or any two tables;
alert rules, their state and their sinks; windows of the prediction log as flat tables.

``drift(reference, current)`` tests every column (KS for numbers, chi-squared on the
contingency table for categories), corrects the p-values across columns, asks for a
practically meaningful effect at large samples, and answers a ``DriftReport``.

Alerting: ``AlertRule`` and the pure ``evaluate`` state machine (hysteresis,
deduplication, cooldown); ``AlertStore`` keeps rules, state and history in the
metadata DB (loaded on first use, so importing this package stays light);
``AlertRouter`` sends fired and resolved alerts, by category, to sinks chosen by
URL scheme (``open_sink``: log, file, http(s) webhook, alertmanager+http(s)).
``MonitorCollector`` / ``monitor_metrics`` export each rule's latest value and
whether it fires as Prometheus gauges (the server's ``/metrics``).

``MonitoringReport`` gathers one endpoint's window (drift, distributions, performance,
KPIs, quality, volume, alerts) as plain data, written as JSON or one self-contained
HTML file; ``build_report(endpoint, window)`` makes one from what is stored.

Windows: ``window_batches(endpoint, "24h")`` yields the prediction log's segments of
the window one at a time (``WindowPart``: one row per model row, inputs, enriched
features, prediction and probabilities as columns); ``read_window`` concatenates them;
``SegmentCache`` keeps a result per segment; ``live_traffic(endpoint, 60)`` gives the
last hour minute by minute per model version (requests, errors, p50/p99 latency, shadow
agreement, ``agreeing_rows``); ``reference_table("churn/3")`` is the
training dataset a model version was fit on.

Performance: ``log_labels`` / ``ingest_labels`` write late ground truth to the
``feedback`` stream, ``join_labels`` joins it to the model's rows, ``performance``
gives realised metrics per window, ``estimate_performance`` the CBPE estimate before
labels come (with intervals); ``log_kpi`` / ``read_kpis`` keep business KPIs.
``observe(endpoint, window)`` measures one window of an endpoint (what the alert rules
and the loop's triggers read).

>>> report = ls.monitoring.drift(train_df, window_df)
>>> print(report.render())
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from loopstack.monitoring._agreement import agreeing_rows
from loopstack.monitoring._alert_sinks import (
    AlertmanagerSink,
    AlertRouter,
    AlertSink,
    DeliveryFailure,
    FileSink,
    LogSink,
    WebhookSink,
    alertmanager_payload,
    open_sink,
)
from loopstack.monitoring._alerts import (
    CATEGORIES,
    COMPARISONS,
    SEVERITIES,
    AlertEvent,
    AlertRule,
    RuleState,
    evaluate,
)
from loopstack.monitoring._build_report import alert_incidents, build_report, parse_window
from loopstack.monitoring._drift import DriftConfig, drift
from loopstack.monitoring._estimate import EstimateReport, estimate_performance
from loopstack.monitoring._flatten import flatten_predictions, skipped_requests
from loopstack.monitoring._kpis import log_kpi, read_kpis
from loopstack.monitoring._labels import ingest_labels, join_labels, log_labels
from loopstack.monitoring._live import LiveSeries, LiveTraffic, live_traffic
from loopstack.monitoring._monitor_report import (
    FeatureDistribution,
    MonitoringReport,
    feature_distributions,
)
from loopstack.monitoring._performance import PerformanceReport, performance
from loopstack.monitoring._profile import ColumnProfile, Profile
from loopstack.monitoring._profiling import profile
from loopstack.monitoring._quality import ColumnQuality, QualityReport, quality
from loopstack.monitoring._reference import (
    reference_dataset,
    reference_table,
    resolve_model_version,
    training_set_name,
)
from loopstack.monitoring._report import ColumnDrift, DriftReport
from loopstack.monitoring._window import SegmentCache, WindowPart, read_window, window_batches

if TYPE_CHECKING:
    from loopstack.monitoring._alert_store import AlertStore
    from loopstack.monitoring._monitor import Observation, observe
    from loopstack.monitoring._prometheus import MonitorCollector, monitor_metrics

#: names loaded on first use (SQLAlchemy behind them)
_LAZY: dict[str, str] = {
    "AlertStore": "loopstack.monitoring._alert_store",
    "MonitorCollector": "loopstack.monitoring._prometheus",
    "monitor_metrics": "loopstack.monitoring._prometheus",
    "Observation": "loopstack.monitoring._monitor",
    "observe": "loopstack.monitoring._monitor",
}

__all__ = [  # noqa: RUF022 - plain sorted(), as the package test expects
    "AlertEvent",
    "AlertRouter",
    "AlertRule",
    "AlertSink",
    "AlertStore",
    "AlertmanagerSink",
    "CATEGORIES",
    "COMPARISONS",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQuality",
    "DeliveryFailure",
    "DriftConfig",
    "DriftReport",
    "EstimateReport",
    "FeatureDistribution",
    "FileSink",
    "LiveSeries",
    "LiveTraffic",
    "LogSink",
    "MonitorCollector",
    "MonitoringReport",
    "Observation",
    "PerformanceReport",
    "Profile",
    "QualityReport",
    "RuleState",
    "SEVERITIES",
    "SegmentCache",
    "WebhookSink",
    "WindowPart",
    "agreeing_rows",
    "alert_incidents",
    "alertmanager_payload",
    "build_report",
    "drift",
    "estimate_performance",
    "evaluate",
    "feature_distributions",
    "flatten_predictions",
    "ingest_labels",
    "join_labels",
    "live_traffic",
    "log_kpi",
    "log_labels",
    "monitor_metrics",
    "observe",
    "open_sink",
    "parse_window",
    "performance",
    "profile",
    "quality",
    "read_kpis",
    "read_window",
    "reference_dataset",
    "reference_table",
    "resolve_model_version",
    "skipped_requests",
    "training_set_name",
    "window_batches",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack.monitoring' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
