"""Monitoring: drift over event-log windows, alert rules, state and sinks.

Alerting: ``AlertRule`` and the pure ``evaluate`` state machine (hysteresis,
deduplication, cooldown); ``AlertStore`` keeps rules, state and history in the
metadata DB (loaded on first use, so importing this package stays light);
``AlertRouter`` sends fired and resolved alerts, by category, to sinks chosen by
URL scheme (``open_sink``: log, file, http(s) webhook, alertmanager+http(s)).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__: list[str] = []
_LAZY: dict[str, str] = {}

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
from loopstack.monitoring._alerts import (  # noqa: E402
    CATEGORIES,
    COMPARISONS,
    SEVERITIES,
    AlertEvent,
    AlertRule,
    RuleState,
    evaluate,
)

if TYPE_CHECKING:
    from loopstack.monitoring._alert_store import AlertStore

_LAZY["AlertStore"] = "loopstack.monitoring._alert_store"  # SQLAlchemy on first use
__all__ += [
    "CATEGORIES",
    "COMPARISONS",
    "SEVERITIES",
    "AlertEvent",
    "AlertRouter",
    "AlertRule",
    "AlertSink",
    "AlertStore",
    "AlertmanagerSink",
    "DeliveryFailure",
    "FileSink",
    "LogSink",
    "RuleState",
    "WebhookSink",
    "alertmanager_payload",
    "evaluate",
    "open_sink",
]
# -- end alerting ----------------------------------------------------------------------

__all__.sort()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopstack.monitoring' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
