"""Monitoring: drift between a reference and a window of predictions, or any two tables;
alert rules, their state and their sinks.

``drift(reference, current)`` tests every column (KS for numbers, chi-squared on the
contingency table for categories), corrects the p-values across columns, asks for a
practically meaningful effect at large samples, and answers a ``DriftReport``.

Alerting: ``AlertRule`` and the pure ``evaluate`` state machine (hysteresis,
deduplication, cooldown); ``AlertStore`` keeps rules, state and history in the
metadata DB (loaded on first use, so importing this package stays light);
``AlertRouter`` sends fired and resolved alerts, by category, to sinks chosen by
URL scheme (``open_sink``: log, file, http(s) webhook, alertmanager+http(s)).

Performance: ``log_labels`` / ``ingest_labels`` write late ground truth to the
``feedback`` stream, ``join_labels`` joins it to the model's rows, ``performance``
gives realised metrics per window, ``estimate_performance`` the CBPE estimate before
labels come (with intervals); ``log_kpi`` / ``read_kpis`` keep business KPIs.

>>> report = ls.monitoring.drift(train_df, window_df)
>>> print(report.render())
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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
from loopstack.monitoring._drift import DriftConfig, drift
from loopstack.monitoring._estimate import EstimateReport, estimate_performance
from loopstack.monitoring._kpis import log_kpi, read_kpis
from loopstack.monitoring._labels import ingest_labels, join_labels, log_labels
from loopstack.monitoring._performance import PerformanceReport, performance
from loopstack.monitoring._report import ColumnDrift, DriftReport

if TYPE_CHECKING:
    from loopstack.monitoring._alert_store import AlertStore

#: names loaded on first use (SQLAlchemy behind them)
_LAZY: dict[str, str] = {"AlertStore": "loopstack.monitoring._alert_store"}

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
    "DeliveryFailure",
    "DriftConfig",
    "DriftReport",
    "EstimateReport",
    "FileSink",
    "LogSink",
    "PerformanceReport",
    "RuleState",
    "SEVERITIES",
    "WebhookSink",
    "alertmanager_payload",
    "drift",
    "estimate_performance",
    "evaluate",
    "ingest_labels",
    "join_labels",
    "log_kpi",
    "log_labels",
    "open_sink",
    "performance",
    "read_kpis",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack.monitoring' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
