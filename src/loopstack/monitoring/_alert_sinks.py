"""Where fired and resolved alerts go: sinks chosen by URL scheme, routed by category.

    log                          python logging (logger ``loopstack.alerts``)
    file:///path/alerts.jsonl    one JSON object per line, appended
    http(s)://host/path          webhook: POST of the event as JSON
    alertmanager+http(s)://h:p   Prometheus Alertmanager, POST /api/v2/alerts

A sink that cannot deliver records the failure (``AlertRouter.failures``) and logs
it; it never raises into the evaluation that produced the alert, which is already
stored and audited.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loopstack.errors import Invalid
from loopstack.monitoring._alerts import CATEGORIES, AlertEvent

__all__ = [
    "AlertRouter",
    "AlertSink",
    "AlertmanagerSink",
    "DeliveryFailure",
    "FileSink",
    "LogSink",
    "WebhookSink",
    "alertmanager_payload",
    "open_sink",
]

log = logging.getLogger("loopstack.alerts")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class AlertSink(abc.ABC):
    """Delivers alert events somewhere; raises on failure (the router records it)."""

    url: str

    @abc.abstractmethod
    def send(self, events: Sequence[AlertEvent]) -> None:
        """Deliver ``events`` (fired and resolved alerts)."""


class LogSink(AlertSink):
    """Alerts as log records of ``loopstack.alerts`` at the rule's severity."""

    def __init__(self, url: str = "log") -> None:
        self.url = url

    def send(self, events: Sequence[AlertEvent]) -> None:
        """Log each event as one line with its JSON."""
        for e in events:
            log.log(
                _LEVELS[e.rule.severity],
                "alert %s %s: %s %s %s (value %s) %s",
                e.kind,
                e.rule.name,
                e.rule.metric,
                e.rule.comparison,
                e.rule.threshold,
                e.value,
                json.dumps(e.to_dict(), sort_keys=True),
            )


class FileSink(AlertSink):
    """Alerts appended as JSON lines to a local file (created with its directory)."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise Invalid(
                f"a file alert sink must be file:///absolute/path; got {url!r} instead",
                field="sink",
            )
        self.path = Path(parts.path)
        self._lock = threading.Lock()

    def send(self, events: Sequence[AlertEvent]) -> None:
        """Append one line per event; the lines of one call are written at once."""
        text = "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in events)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())


class _HttpSink(AlertSink):
    def __init__(self, url: str, target: str, *, timeout_s: float, retries: int) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise Invalid(f"'retries' must be an integer >= 0; got {retries!r} instead")
        if not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise Invalid(f"'timeout_s' must be a number > 0; got {timeout_s!r} instead")
        self.url = url
        self.target = target
        self.timeout_s = float(timeout_s)
        self.retries = retries

    def _post(self, body: Any) -> None:
        import httpx

        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 2.0))
            try:
                r = httpx.post(self.target, json=body, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                last = exc
                continue
            if r.status_code < 300:
                return
            last = RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            if r.status_code < 500 and r.status_code != 429:
                break  # the receiver refused the payload: retrying will not help
        raise RuntimeError(f"POST {self.target} failed after {attempt + 1} attempt(s): {last}")


class WebhookSink(_HttpSink):
    """A webhook: ``POST`` of ``{"alerts": [event, ...]}`` as JSON, with retries."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 2) -> None:
        super().__init__(url, url, timeout_s=timeout_s, retries=retries)

    def send(self, events: Sequence[AlertEvent]) -> None:
        """POST the events in one body."""
        self._post({"alerts": [e.to_dict() for e in events]})


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_payload(
    events: Iterable[AlertEvent], *, resolve_timeout_s: float = 86400.0
) -> list[dict[str, Any]]:
    """The ``postableAlerts`` body of Alertmanager's ``POST /api/v2/alerts``.

    Labels identify the alert (``alertname`` = the rule, plus severity, category,
    metric and the rule's labels), so a resolution matches its firing. A firing
    alert gets an ``endsAt`` ``resolve_timeout_s`` ahead (Alertmanager resolves an
    alert whose ``endsAt`` has passed); a resolved one ends at its resolution time.
    """
    out = []
    for e in events:
        labels = {
            **e.rule.labels,
            "alertname": e.rule.name,
            "severity": e.rule.severity,
            "category": e.rule.category,
            "metric": e.rule.metric,
        }
        started = e.started_at if e.started_at is not None else e.at
        ends = e.at if e.kind == "resolved" else e.at + resolve_timeout_s
        summary = f"{e.rule.metric} {e.rule.comparison} {e.rule.threshold:g} (value {e.value:g})"
        annotations = {"summary": summary, "value": repr(e.value)}
        if e.rule.description:
            annotations["description"] = e.rule.description
        out.append(
            {
                "labels": dict(sorted(labels.items())),
                "annotations": annotations,
                "startsAt": _rfc3339(started),
                "endsAt": _rfc3339(ends),
            }
        )
    return out


class AlertmanagerSink(_HttpSink):
    """Prometheus Alertmanager's API v2 (``alertmanager+http://host:9093``)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 2) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.removeprefix("alertmanager+")
        if scheme not in ("http", "https") or not parts.netloc:
            raise Invalid(
                "an Alertmanager sink must be alertmanager+http(s)://host:port; "
                f"got {url!r} instead",
                field="sink",
            )
        base = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        super().__init__(url, f"{base}/api/v2/alerts", timeout_s=timeout_s, retries=retries)

    def send(self, events: Sequence[AlertEvent]) -> None:
        """POST the events as Alertmanager alerts."""
        self._post(alertmanager_payload(events))


def open_sink(url: str, **options: Any) -> AlertSink:
    """The sink named by ``url``'s scheme; an unknown scheme names the valid ones.

    >>> open_sink("file:///var/log/loopstack/alerts.jsonl").path
    PosixPath('/var/log/loopstack/alerts.jsonl')
    """
    if not isinstance(url, str) or not url:
        raise Invalid(f"an alert sink must be a URL string; got {url!r} instead", field="sink")
    scheme = urlsplit(url).scheme if "://" in url else url
    if scheme == "log":
        return LogSink(url)
    if scheme == "file":
        return FileSink(url)
    if scheme in ("http", "https"):
        return WebhookSink(url, **options)
    if scheme in ("alertmanager+http", "alertmanager+https"):
        return AlertmanagerSink(url, **options)
    raise Invalid(
        "an alert sink's scheme must be one of log, file, http, https, "
        f"alertmanager+http, alertmanager+https; got {url!r} instead",
        field="sink",
    )


@dataclass(frozen=True)
class DeliveryFailure:
    """A delivery that did not land: which sink, which alerts, why, when."""

    sink: str
    rules: tuple[str, ...]
    error: str
    at: float


class AlertRouter:
    """Routes alerts by their rule's category to the sinks configured for it.

    >>> router = AlertRouter({"infrastructure": ["log", "alertmanager+http://am:9093"],
    ...                       "model_quality": ["https://hooks.example/ml"]})  # doctest: +SKIP
    """

    def __init__(
        self,
        routes: Mapping[str, Sequence[str | AlertSink]],
        *,
        max_failures: int = 1000,
    ) -> None:
        if not isinstance(routes, Mapping):
            raise Invalid(f"alert routes must map a category to sinks; got {routes!r} instead")
        self.routes: dict[str, list[AlertSink]] = {}
        for category, sinks in routes.items():
            if category not in CATEGORIES:
                raise Invalid(
                    f"an alert route's category must be one of {', '.join(CATEGORIES)}; "
                    f"got {category!r} instead",
                    field="category",
                )
            if isinstance(sinks, str) or not isinstance(sinks, Sequence):
                raise Invalid(
                    f"the sinks of category {category!r} must be a list of URLs; "
                    f"got {sinks!r} instead",
                    field=category,
                )
            self.routes[category] = [s if isinstance(s, AlertSink) else open_sink(s) for s in sinks]
        self.failures: list[DeliveryFailure] = []
        self._max_failures = max_failures
        self._lock = threading.Lock()

    def deliver(self, events: Sequence[AlertEvent]) -> list[DeliveryFailure]:
        """Send each event to its category's sinks; the failures of this call."""
        failed: list[DeliveryFailure] = []
        for category, sinks in self.routes.items():
            batch = [e for e in events if e.rule.category == category]
            if not batch:
                continue
            for sink in sinks:
                try:
                    sink.send(batch)
                except Exception as exc:  # a sink never breaks the evaluation
                    f = DeliveryFailure(
                        sink.url, tuple(e.rule.name for e in batch), str(exc), time.time()
                    )
                    log.error("alert delivery to %s failed: %s", sink.url, exc)
                    failed.append(f)
        if failed:
            with self._lock:
                self.failures.extend(failed)
                del self.failures[: -self._max_failures]
        return failed
