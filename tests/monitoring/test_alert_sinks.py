"""Alert sinks chosen by scheme and routed by category: a real local webhook server,
JSON lines on disk, log records, and Alertmanager's API v2 payload."""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.monitoring import (
    AlertEvent,
    AlertmanagerSink,
    AlertRouter,
    AlertRule,
    FileSink,
    LogSink,
    WebhookSink,
    alertmanager_payload,
    open_sink,
)

INFRA = AlertRule(
    "p99", "latency_p99_ms", ">", 250, severity="critical", labels={"endpoint": "churn"}
)
QUALITY = AlertRule("acc", "accuracy", "<", 0.8, category="model_quality", description="drop")


def fired(rule: AlertRule, value: float = 1.0, at: float = 1_700_000_000.0) -> AlertEvent:
    return AlertEvent("fired", rule, value, at, at)


class _Receiver:
    """A real HTTP server on loopback answering with the given statuses in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[tuple[str, object]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers["Content-Length"])
                receiver.bodies.append((self.path, json.loads(self.rfile.read(n))))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_posts_json_and_retries_a_server_error() -> None:
    with _Receiver([503]) as rx:
        WebhookSink(f"{rx.url}/hook", retries=2, timeout_s=5).send([fired(INFRA, 300.0)])
    assert len(rx.bodies) == 2  # the 503, then the retry that landed
    path, body = rx.bodies[-1]
    assert path == "/hook"
    assert body == {
        "alerts": [
            {
                "kind": "fired",
                "rule": "p99",
                "metric": "latency_p99_ms",
                "comparison": ">",
                "threshold": 250.0,
                "value": 300.0,
                "severity": "critical",
                "category": "infrastructure",
                "labels": {"endpoint": "churn"},
                "description": "",
                "at": 1_700_000_000.0,
                "started_at": 1_700_000_000.0,
            }
        ]
    }


def test_a_failed_delivery_is_recorded_not_raised() -> None:
    with _Receiver([400]) as rx:
        router = AlertRouter({"infrastructure": [f"{rx.url}/hook", "log"]})
        failures = router.deliver([fired(INFRA)])
    assert len(rx.bodies) == 1  # a 4xx is not retried
    assert [(f.sink, f.rules) for f in failures] == [(f"{rx.url}/hook", ("p99",))]
    assert "HTTP 400" in failures[0].error and router.failures == failures
    # nobody listening: a connection error, retried, then recorded
    dead = AlertRouter({"infrastructure": [WebhookSink(rx.url, retries=1, timeout_s=1)]})
    assert "2 attempt(s)" in dead.deliver([fired(INFRA)])[0].error


def test_router_sends_each_category_to_its_own_sinks(tmp_path: Path, caplog) -> None:
    infra, quality = tmp_path / "infra.jsonl", tmp_path / "ml" / "quality.jsonl"
    router = AlertRouter(
        {"infrastructure": [f"file://{infra}", "log"], "model_quality": [f"file://{quality}"]}
    )
    with caplog.at_level(logging.INFO, logger="loopstack.alerts"):
        assert router.deliver([fired(INFRA), fired(QUALITY), fired(INFRA, 2.0)]) == []
    assert [json.loads(line)["value"] for line in infra.read_text().splitlines()] == [1.0, 2.0]
    assert [json.loads(line)["rule"] for line in quality.read_text().splitlines()] == ["acc"]
    assert [(r.levelname, r.getMessage()[:20]) for r in caplog.records] == [
        ("CRITICAL", "alert fired p99: lat"),
        ("CRITICAL", "alert fired p99: lat"),
    ]


def test_sinks_are_chosen_by_scheme_and_bad_urls_name_the_valid_ones() -> None:
    assert isinstance(open_sink("log"), LogSink)
    assert isinstance(open_sink("file:///tmp/a.jsonl"), FileSink)
    assert isinstance(open_sink("https://hooks.example/x"), WebhookSink)
    am = open_sink("alertmanager+http://127.0.0.1:9093")
    assert isinstance(am, AlertmanagerSink) and am.target == "http://127.0.0.1:9093/api/v2/alerts"
    with pytest.raises(ls.Invalid, match="must be one of log, file, http.*got 'smtp://x'"):
        open_sink("smtp://x")
    with pytest.raises(ls.Invalid, match="file:///absolute/path"):
        open_sink("file://host/a")
    with pytest.raises(ls.Invalid, match="category must be one of"):
        AlertRouter({"business": ["log"]})
    with pytest.raises(ls.Invalid, match="list of URLs"):
        AlertRouter({"infrastructure": "log"})


# The parts of Alertmanager's api/v2/openapi.yaml a postableAlerts body must satisfy:
# an array of postableAlert {labels: labelSet (required), annotations: labelSet,
# startsAt, endsAt: date-time, generatorURL: uri}; labelSet: string -> string.
_POSTABLE_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _check_postable_alerts(body: object) -> None:
    assert isinstance(body, list)
    for alert in body:
        assert isinstance(alert, dict) and set(alert) <= _POSTABLE_KEYS and "labels" in alert
        for key in ("labels", "annotations"):
            for name, value in alert.get(key, {}).items():
                assert _LABEL_NAME.match(name) and isinstance(value, str), (key, name, value)
        for key in ("startsAt", "endsAt"):
            if key in alert:
                assert _DATE_TIME.match(alert[key]), alert[key]


def test_alertmanager_payload_follows_the_api_v2_spec() -> None:
    start = 1_700_000_000.0
    resolved = AlertEvent("resolved", QUALITY, 0.9, start + 600, start)
    body = alertmanager_payload([fired(INFRA, 300.0, start), resolved], resolve_timeout_s=3600)
    _check_postable_alerts(body)
    firing, ended = body
    assert firing["labels"] == {
        "alertname": "p99",
        "category": "infrastructure",
        "endpoint": "churn",
        "metric": "latency_p99_ms",
        "severity": "critical",
    }
    assert firing["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert firing["endsAt"] == "2023-11-14T23:13:20.000Z"  # an hour ahead while firing
    assert firing["annotations"]["summary"] == "latency_p99_ms > 250 (value 300)"
    assert ended["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert ended["endsAt"] == "2023-11-14T22:23:20.000Z"  # the resolution time
    assert ended["annotations"]["description"] == "drop"


def test_alertmanager_sink_posts_to_api_v2_alerts() -> None:
    with _Receiver([]) as rx:
        sink = open_sink("alertmanager+" + rx.url)
        sink.send([fired(INFRA)])
    ((path, body),) = rx.bodies
    assert path == "/api/v2/alerts"
    _check_postable_alerts(body)
    assert body[0]["labels"]["alertname"] == "p99"
