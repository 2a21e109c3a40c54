"""Feature enrichment's counters and breaker states as Prometheus text, per endpoint and
arm of one serving process (the serving app appends them to ``/metrics``)."""

from __future__ import annotations

from typing import Any

__all__ = ["enrichment_metrics"]

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def enrichment_metrics(runtime: Any) -> str:
    """Prometheus text for every enriching endpoint of ``runtime`` (this process's; a
    deployment's per arm): ``loopstack_enrichment_requests_total{endpoint,arm,outcome}``
    (ok, degraded, failed_closed), ``loopstack_enrichment_store_failures_total{...,kind}``
    (error, timeout, short_circuited) and ``loopstack_enrichment_breaker_state`` (0
    closed, 1 half-open, 2 open). Empty when none enriches."""
    deployed = runtime.deployments
    served: list[tuple[str, str, Any]] = [
        (e.name, "", e) for e in runtime.endpoints if e.name not in deployed
    ]
    for name in deployed:
        served += [(name, arm, e) for arm, e in runtime.arm_endpoints(name).items()]
    families: dict[str, list[str]] = {"requests_total": [], "store_failures_total": []}
    families["breaker_state"] = []
    for name, arm, endpoint in served:
        model = endpoint.served
        enricher = None if model is None else model.enricher
        if enricher is None:
            continue
        at = f'endpoint="{_label(name)}",arm="{_label(arm)}"'
        s = enricher.stats
        for outcome in ("ok", "degraded", "failed_closed"):
            value = getattr(s, outcome)
            families["requests_total"].append(f'{{{at},outcome="{outcome}"}} {value}')
        for kind, value in (
            ("error", s.store_errors),
            ("timeout", s.timeouts),
            ("short_circuited", s.short_circuited),
        ):
            families["store_failures_total"].append(f'{{{at},kind="{kind}"}} {value}')
        families["breaker_state"].append(f"{{{at}}} {_BREAKER_VALUE[enricher.breaker.state]}")
    if not families["breaker_state"]:
        return ""
    lines = []
    for family, samples in families.items():
        metric = f"loopstack_enrichment_{family}"
        kind = "gauge" if family == "breaker_state" else "counter"
        lines.append(f"# TYPE {metric} {kind}")
        lines += [metric + sample for sample in samples]
    return "\n".join(lines) + "\n"
