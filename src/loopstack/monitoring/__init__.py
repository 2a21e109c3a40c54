"""Monitoring: drift over event-log windows, alert rules, state and sinks."""

__all__: list[str] = []

# -- alerting (wp/alerts) --------------------------------------------------------------
from loopstack.monitoring._alert_sinks import (  # noqa: E402
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
from loopstack.monitoring._alert_store import AlertStore  # noqa: E402
from loopstack.monitoring._alerts import (  # noqa: E402
    CATEGORIES,
    COMPARISONS,
    SEVERITIES,
    AlertEvent,
    AlertRule,
    RuleState,
    evaluate,
)

__all__ += [
    "AlertRouter",
    "AlertSink",
    "AlertStore",
    "AlertmanagerSink",
    "DeliveryFailure",
    "FileSink",
    "LogSink",
    "WebhookSink",
    "alertmanager_payload",
    "open_sink",
    "CATEGORIES",
    "COMPARISONS",
    "SEVERITIES",
    "AlertEvent",
    "AlertRule",
    "RuleState",
    "evaluate",
]
# -- end alerting ----------------------------------------------------------------------
