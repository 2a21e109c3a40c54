"""Measure a rollout's candidate over the last window of the prediction log, and judge
the plan's guardrails on what was measured.

The log records, per prediction, the endpoint, the ``model_version`` that answered (its
number as text), the arm, the latency and whether it was a shadow's copy, so the
candidate's rows are the window's rows of its version number (its shadow copies while
shadowing). From them: volume, latency, drift of the inputs and of the predictions
against the candidate's reference profile, shadow agreement (the candidate's answer vs
the champion's on the same request and row), realised performance on the labels that
came back and the performance estimated from the probabilities, each as monitoring
computes it (``Observation.metrics`` names them). ``error_rate``: the window's failed
requests of the version (the ``prediction_errors`` stream, which every replica writes)
over its answered plus failed ones; or, when the plan names a ``metrics_url``, read from
that serving replica's Prometheus ``/metrics`` as the change of its request and error
counters since the previous reading (one replica's view).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopstack.errors import LoopstackError
from loopstack.loop._rollout_plan import GUARDRAIL_METRICS, Guardrail, RolloutPlan

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.store import Stores
    from loopstack.store.events import EventLog

__all__ = ["Breach", "Measurement", "judge", "measure_candidate", "read_counters"]

log = logging.getLogger("loopstack.loop")

_META = {"ts", "request_id", "row", "endpoint", "model_version", "arm", "latency_ms", "shadow"}


@dataclass(frozen=True)
class Breach:
    """A guardrail the candidate broke, with the value measured."""

    guardrail: Guardrail
    value: float

    def __str__(self) -> str:
        return (
            f"{self.guardrail.metric} = {self.value:.6g} breaks the guardrail "
            f"{self.guardrail} (threshold {self.guardrail.threshold:g})"
        )


@dataclass
class Measurement:
    """What the candidate did over one window: the values of the guardrail metrics that
    could be measured, notes on those that could not, and the breaches."""

    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    #: the serving counters read (for the next ``error_rate``)
    counters: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The measurement as plain values."""
        return {
            "values": self.values,
            "notes": self.notes,
            "breaches": [
                {"metric": b.guardrail.metric, "value": b.value, "guardrail": str(b.guardrail)}
                for b in self.breaches
            ],
        }


def judge(plan: RolloutPlan, values: dict[str, float]) -> list[Breach]:
    """The guardrails of ``plan`` that ``values`` break (a metric not measured breaks none)."""
    return [
        Breach(g, values[g.metric])
        for g in plan.guardrails
        if g.metric in values and not g.holds(values[g.metric])
    ]


def read_counters(metrics_url: str, endpoint: str, version: str) -> dict[str, float]:
    """``{"requests": n, "errors": m}`` of ``version`` on ``endpoint`` from a replica's
    Prometheus text (``loopstack_serving_requests_total`` / ``..._errors_total``)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(metrics_url, timeout=5.0).raise_for_status().text
    except httpx.HTTPError as exc:
        from loopstack.errors import StoreUnavailable

        raise StoreUnavailable(f"cannot read the serving metrics at {metrics_url}: {exc}") from exc
    got = {"requests": 0.0, "errors": 0.0}
    names = {"loopstack_serving_requests": "requests", "loopstack_serving_errors": "errors"}
    for family in text_string_to_metric_families(text):
        key = names.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("endpoint") == endpoint
                and labels.get("model_version") == version
            ):
                got[key] += float(sample.value)
    return got


def measure_candidate(
    stores: Stores,
    *,
    endpoint: str,
    model_name: str,
    version: str,
    champion_version: str | None,
    plan: RolloutPlan,
    shadowing: bool,
    now: float,
    project_id: int = 0,
    previous_counters: dict[str, float] | None = None,
) -> Measurement:
    """The candidate ``model_name``/``version`` on ``endpoint`` over the ``plan.window_s``
    seconds before ``now`` (epoch seconds), judged against the plan's guardrails."""
    from loopstack.monitoring._window import read_window
    from loopstack.store.events import EventLog

    out = Measurement()
    until = dt.datetime.fromtimestamp(now, dt.UTC)
    since = until - dt.timedelta(seconds=plan.window_s)
    events = EventLog(stores, project_id=project_id)
    flat = read_window(
        endpoint, since, until, events=events, model_version=version, include_shadow=True
    ).to_pandas()
    if len(flat):
        flat = flat[flat["shadow"].fillna(False).astype(bool) == shadowing]
    out.values["requests"] = float(flat["request_id"].nunique()) if len(flat) else 0.0
    if not len(flat):
        out.notes.append(f"no predictions of version {version} on {endpoint!r} in the window")
    else:
        _latency(flat, out)
        _quality(stores, flat, f"{model_name}/{version}", events, since, out)
        if shadowing and champion_version is not None:
            _agreement(endpoint, since, until, events, champion_version, flat, out)
    if plan.metrics_url is not None:
        _error_rate(plan.metrics_url, endpoint, version, previous_counters, out)
    else:
        _logged_error_rate(events, endpoint, version, shadowing, since, until, out)
    out.breaches = judge(plan, out.values)
    return out


def _latency(flat: pd.DataFrame, out: Measurement) -> None:
    import numpy as np

    per_request = flat.drop_duplicates("request_id")["latency_ms"].to_numpy(dtype=float)
    per_request = per_request[np.isfinite(per_request)]
    if per_request.size:
        out.values["latency_p50_ms"] = float(np.percentile(per_request, 50))
        out.values["latency_p99_ms"] = float(np.percentile(per_request, 99))


def _quality(
    stores: Stores,
    flat: pd.DataFrame,
    label: str,
    events: Any,
    since: dt.datetime,
    out: Measurement,
) -> None:
    """Drift against the candidate's reference, realised and estimated performance, as
    monitoring's ``Observation.metrics`` names them."""
    import pyarrow as pa

    from loopstack.monitoring._monitor import Observation, reference_profile

    obs = Observation(str(flat["endpoint"].iloc[0]), since, since, model_version=label)
    columns = [c for c in flat.columns if c not in _META and not str(c).startswith("_")]
    try:
        ref = reference_profile(label, stores=stores)
    except LoopstackError as exc:
        out.notes.append(f"no drift measured: no reference profile of {label} ({exc})")
        ref = None
    if ref is not None:
        from loopstack.monitoring._drift import drift
        from loopstack.monitoring._profile import Profile
        from loopstack.monitoring._profiling import profile

        shared = [c for c in columns if c in ref.columns]
        if shared:
            table = pa.Table.from_pandas(flat[shared], preserve_index=False)
            current = profile(table, like=ref)
            ref_shared = Profile(ref.num_rows, {c: ref.columns[c] for c in shared})
            try:
                obs.drift = drift(ref_shared, current)
            except LoopstackError as exc:
                out.notes.append(f"no drift measured: {exc}")
    if "prediction" in flat.columns:
        _performance(flat, events, since, obs, out)
    for name, value in obs.metrics().items():
        if name in GUARDRAIL_METRICS and name not in ("requests",):
            out.values[name] = value


def _performance(
    flat: pd.DataFrame, events: Any, since: dt.datetime, obs: Any, out: Measurement
) -> None:
    from loopstack.errors import Invalid
    from loopstack.monitoring._estimate import estimate_performance
    from loopstack.monitoring._labels import join_labels
    from loopstack.monitoring._performance import performance
    from loopstack.serving._prediction_log import feedback_schema

    feedback = events.read("feedback", since=since, schema=feedback_schema())
    keep = [
        c
        for c in flat.columns
        if c in ("ts", "request_id", "row", "prediction") or str(c).startswith("proba_")
    ]
    frame = join_labels(flat[keep], feedback)
    try:
        if frame["label"].notna().any():
            obs.performance = performance(frame, window=None)
        if any(str(c).startswith("proba_") for c in frame.columns):
            obs.estimated = estimate_performance(frame, window=None)
    except Invalid as exc:
        out.notes.append(f"no performance measured: {exc}")


def _agreement(
    endpoint: str,
    since: dt.datetime,
    until: dt.datetime,
    events: Any,
    champion_version: str,
    candidate: pd.DataFrame,
    out: Measurement,
) -> None:
    """The share of the candidate's shadow rows that answered as the champion did."""
    from loopstack.monitoring._agreement import agreeing_rows
    from loopstack.monitoring._window import read_window

    if "prediction" not in candidate.columns:
        out.notes.append("no shadow agreement: the predictions carry no 'prediction' column")
        return
    champion = read_window(
        endpoint, since, until, events=events, model_version=champion_version
    ).to_pandas()
    if not len(champion) or "prediction" not in champion.columns:
        out.notes.append(f"no shadow agreement: no answers of version {champion_version}")
        return
    both = agreeing_rows(candidate[["request_id", "row", "prediction"]], champion)
    if not len(both):
        out.notes.append("no shadow agreement: no request answered by both yet")
        return
    out.values["shadow_agreement"] = float(both["agrees"].mean())


def _logged_error_rate(
    events: EventLog,
    endpoint: str,
    version: str,
    shadowing: bool,
    since: dt.datetime,
    until: dt.datetime,
    out: Measurement,
) -> None:
    """``error_rate`` from the prediction log: the version's failed requests in the
    window over its answered (``out.values["requests"]``) plus failed ones."""
    from loopstack.serving._prediction_log import ERRORS_STREAM, errors_schema

    failed = events.read(
        ERRORS_STREAM,
        since,
        until,
        where={"endpoint": endpoint, "model_version": version},
        schema=errors_schema(),
    ).to_pandas()
    if len(failed):
        failed = failed[failed["shadow"].fillna(False).astype(bool) == shadowing]
    errors = float(failed["request_id"].nunique()) if len(failed) else 0.0
    total = out.values.get("requests", 0.0) + errors
    if total > 0:
        out.values["error_rate"] = errors / total
    else:
        out.notes.append("error_rate not measured: no requests of the version in the window")


def _error_rate(
    url: str,
    endpoint: str,
    version: str,
    previous: dict[str, float] | None,
    out: Measurement,
) -> None:
    try:
        now = read_counters(url, endpoint, version)
    except LoopstackError as exc:
        out.notes.append(f"error_rate not measured: {exc}")
        return
    out.counters = now
    before = previous or {"requests": 0.0, "errors": 0.0}
    requests = now["requests"] - before.get("requests", 0.0)
    errors = now["errors"] - before.get("errors", 0.0)
    if requests < 0:  # the replica restarted: its counters started over
        requests, errors = now["requests"], now["errors"]
    if requests > 0:
        out.values["error_rate"] = float(errors / requests)
    else:
        out.notes.append("error_rate not measured: no requests since the previous reading")
