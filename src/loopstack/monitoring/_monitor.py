"""``observe(endpoint, window)``: one endpoint's window of the prediction log measured
against its model version's reference, and ``monitor_once``: every endpoint's measures
evaluated by the alert rules (``loopstack monitor run`` calls it on a schedule).

An observation holds the volume and latency of the window, the drift of the inputs and
of the predictions against the reference profile, data quality, the realised
performance where labels came back (joined by request id), the estimated performance
(CBPE) from the probabilities, and the business KPIs. Its ``metrics()`` are the flat
numbers alert rules name (``drift_share``, ``accuracy``, ``estimated_accuracy``, ...).

The window's profile is built segment by segment, each cached by the segment's digest
and the reference's layout, so a segment is profiled once, whatever windows contain it;
the reference profile is computed once per model version and kept with it (a blob in
the artifact store named by the version's ``loopstack.monitoring.reference_profile``
tag).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, LoopstackError, NotFound

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.monitoring._alert_store import AlertStore
    from loopstack.monitoring._alerts import AlertEvent
    from loopstack.monitoring._estimate import EstimateReport
    from loopstack.monitoring._performance import PerformanceReport
    from loopstack.monitoring._profile import Profile
    from loopstack.monitoring._quality import QualityReport
    from loopstack.monitoring._report import DriftReport
    from loopstack.store import Stores
    from loopstack.store.events import EventLog

__all__ = [
    "Observation",
    "model_version_name",
    "monitor_once",
    "observe",
    "reference_profile",
]

log = logging.getLogger("loopstack.monitoring")

REFERENCE_TAG = "loopstack.monitoring.reference_profile"
#: the flat window's columns that describe a row rather than feed the model
META_COLUMNS = ("ts", "request_id", "row", "endpoint", "model_version", "arm", "latency_ms")
PROFILE_VERSION = "1"


def _is_output(column: str) -> bool:
    """The model's own outputs (the prediction, class probabilities), not its inputs."""
    return column == "prediction" or column.startswith("proba_")


def _feature_columns(names: list[str]) -> list[str]:
    return [n for n in names if n not in META_COLUMNS and not n.startswith("_")]


def _predict_reference(model_version: str, table: Any) -> Any:
    """The reference table with the model's own predictions (and probabilities) on it,
    so that prediction drift has a reference; the table as it was when the model
    cannot be loaded or run here (logged, not raised)."""
    import numpy as np
    import pyarrow as pa

    from loopstack.registry import load_model

    try:
        model = load_model(f"models:/{model_version}")
        sig = model.signature
        specs = sig.inputs if sig is not None and sig.is_tabular else ()
        names = [c.name for c in specs] if isinstance(specs, tuple) else []
        names = [n for n in names if n and n in table.column_names]
        frame = table.select(names).to_pandas() if names else table.to_pandas()
        pred, proba = model.predict_both(frame)
    except Exception as exc:  # noqa: BLE001 - a reference without predictions still serves
        log.warning("no predictions on the reference of %s: %s", model_version, exc)
        return table
    pred = np.asarray(pred)
    if pred.ndim == 1:
        table = table.append_column("prediction", pa.array(pred.tolist()))
    if proba is not None and np.ndim(proba) == 2:
        for i in range(np.shape(proba)[1]):
            table = table.append_column(f"proba_{i}", pa.array(np.asarray(proba)[:, i]))
    return table


def reference_profile(model_version: Any, *, stores: Stores | None = None) -> Profile:
    """The reference profile of a registered model version (``"name/version"`` or a
    ``ModelVersion``): its training dataset version with the model's predictions on it,
    profiled once and kept with the version; later calls read it back."""
    from loopstack.monitoring._profile import Profile
    from loopstack.monitoring._profiling import profile
    from loopstack.monitoring._reference import reference_table, resolve_model_version
    from loopstack.registry import registry

    mv = resolve_model_version(model_version)
    label = f"{mv.name}/{mv.version}"
    if stores is None:
        from loopstack.store import open_stores

        stores = open_stores()
    digest = (mv.tags or {}).get(REFERENCE_TAG)
    if digest:
        try:
            return Profile.from_dict(json.loads(stores.artifacts.blobs.read_bytes(digest)))
        except (LoopstackError, OSError, ValueError) as exc:
            log.warning("the stored reference profile of %s is unreadable (%s)", label, exc)
    table = _predict_reference(label, reference_table(mv))
    built = profile(table)
    text = json.dumps(built.to_dict(), separators=(",", ":")).encode()
    digest, _ = stores.artifacts.blobs.put_bytes(text)
    registry().set_model_version_tag(mv.name, mv.version, REFERENCE_TAG, digest)
    return built


@dataclass
class Observation:
    """One endpoint's window: what came in, how it compares with the reference, how the
    model did. Sections are None when there was nothing to compute them from (see
    ``notes``)."""

    endpoint: str
    since: dt.datetime
    until: dt.datetime
    model_version: str | None = None
    requests: int = 0
    rows: int = 0
    skipped: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    drift: DriftReport | None = None
    quality: QualityReport | None = None
    performance: PerformanceReport | None = None
    estimated: EstimateReport | None = None
    kpis: dict[str, float] = field(default_factory=dict)
    #: seconds since the newest event online, per feature view the endpoint enriches from
    feature_lag_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """The flat numbers alert rules name: volume (``requests``, ``rows``,
        ``skipped_requests``), ``latency_p50_ms`` / ``latency_p99_ms``, drift
        (``drift_share``, ``drifted_columns``, ``drift_max_effect``,
        ``prediction_drift``: the largest effect size among the prediction and the class
        probabilities, which ``drift_share`` leaves out, ``drift.<column>``),
        quality (``quality_issues``, ``null_rate_max``, ``out_of_range_max``,
        ``unseen_max``), the latest window's realised metrics (``accuracy``, ``f1``,
        ``roc_auc``, ``mae``, ..., ``label_coverage``) and estimated ones
        (``estimated_accuracy``, ...), ``kpi.<name>`` (the latest value), and feature
        freshness (``feature_lag_max_s``, ``feature_lag_s.<view>``) for an endpoint
        that enriches from the online store."""
        out: dict[str, float] = {
            "requests": float(self.requests),
            "rows": float(self.rows),
            "skipped_requests": float(self.skipped),
        }
        if self.latency_p50_ms is not None and self.latency_p99_ms is not None:
            out["latency_p50_ms"] = self.latency_p50_ms
            out["latency_p99_ms"] = self.latency_p99_ms
        if self.drift is not None:
            compared = [c for c in self.drift.columns if c.status == "ok"]
            outputs = [c for c in compared if _is_output(c.column)]
            inputs = [c for c in compared if not _is_output(c.column)]
            out["drift_share"] = float(
                sum(c.drifted for c in inputs) / len(inputs) if inputs else 0.0
            )
            out["drifted_columns"] = float(sum(c.drifted for c in inputs))
            out["drift_max_effect"] = max((c.effect_size or 0.0 for c in inputs), default=0.0)
            for c in compared:
                out[f"drift.{c.column}"] = float(c.effect_size or 0.0)
            if outputs:
                out["prediction_drift"] = max(float(c.effect_size or 0.0) for c in outputs)
        if self.quality is not None:
            cols = self.quality.columns
            out["quality_issues"] = float(len(self.quality.issues))
            out["null_rate_max"] = max((c.null_rate_current or 0.0 for c in cols), default=0.0)
            out["out_of_range_max"] = max((c.out_of_range_share or 0.0 for c in cols), default=0.0)
            out["unseen_max"] = max((c.unseen_share or 0.0 for c in cols), default=0.0)
        for prefix, report in (("", self.performance), ("estimated_", self.estimated)):
            if report is None or not report.rows:
                continue
            rows = [r for r in report.rows if r.get("segment") is None]
            latest = rows[-1] if rows else report.rows[-1]
            for m in report.metrics:
                value = latest.get(m)
                if isinstance(value, int | float) and value == value:
                    out[f"{prefix}{m}"] = float(value)
            if not prefix:
                labelled = sum(r.get("labelled") or 0 for r in rows)
                total = sum(r.get("rows") or 0 for r in rows)
                out["label_coverage"] = float(labelled / total) if total else 0.0
        for name, value in self.kpis.items():
            out[f"kpi.{name}"] = float(value)
        if self.feature_lag_s:
            out["feature_lag_max_s"] = max(self.feature_lag_s.values())
            for view, lag in self.feature_lag_s.items():
                out[f"feature_lag_s.{view}"] = lag
        return out


def _window_ends(window: Any, until: Any) -> tuple[dt.datetime, dt.datetime]:
    from loopstack.monitoring._build_report import parse_window
    from loopstack.monitoring._monitor_report import as_time

    seconds = parse_window(window)
    end = as_time(until if until is not None else time.time(), "until")
    return end - dt.timedelta(seconds=seconds), end


def _window_profile(
    parts: list[Any], reference: Profile, columns: list[str], cache: Any
) -> Profile | None:
    from loopstack.monitoring._profile import Profile
    from loopstack.monitoring._profiling import profile

    key = f"profile:{PROFILE_VERSION}:{reference.layout_digest()}"
    merged: Profile | None = None
    for part in parts:

        def compute(table: Any) -> Any:
            names = [c for c in columns if c in table.column_names]
            if not names or table.num_rows == 0:
                return None
            return profile(table.select(names), like=reference).to_dict()

        got = cache.get_or_compute(part, key, compute)
        if got is None:
            continue
        one = Profile.from_dict(got)
        merged = one if merged is None else merged.merge(one)
    return merged


def _performance_frame(flat: pd.DataFrame, events: EventLog, since: dt.datetime) -> pd.DataFrame:
    from loopstack.monitoring._labels import join_labels
    from loopstack.serving._prediction_log import feedback_schema

    feedback = events.read("feedback", since=since, schema=feedback_schema())
    keep = [
        c
        for c in flat.columns
        if c in ("ts", "request_id", "row", "prediction") or c.startswith("proba_")
    ]
    return join_labels(flat[keep], feedback)


def observe(
    endpoint: str,
    window: Any = "1h",
    *,
    until: Any = None,
    reference: Any = None,
    bucket: str | None = None,
    stores: Stores | None = None,
    project_id: int = 0,
    events: EventLog | None = None,
    drift_options: dict[str, Any] | None = None,
    model: str | None = None,
) -> Observation:
    """Measure ``endpoint`` over the ``window`` before ``until`` (now).

    ``reference``: a ``Profile``, a DataFrame / Arrow table / dataset version, or None
    for the reference profile of the model version that served most of the window.
    ``bucket``: the performance windows inside it (default: the whole window).
    ``model``: the registered model the endpoint serves, when neither its deployment's
    arms nor the endpoint's own name say it (the log records version numbers only).

    >>> obs = ls.monitoring.observe("churn", "24h")          # doctest: +SKIP
    >>> obs.metrics()["drift_share"], obs.metrics().get("accuracy")  # doctest: +SKIP
    """
    import numpy as np
    import pyarrow as pa

    from loopstack.monitoring._drift import drift
    from loopstack.monitoring._estimate import estimate_performance
    from loopstack.monitoring._kpis import read_kpis
    from loopstack.monitoring._performance import performance
    from loopstack.monitoring._profile import Profile
    from loopstack.monitoring._quality import quality
    from loopstack.monitoring._window import SegmentCache, window_batches

    since, until_ = _window_ends(window, until)
    if stores is None:
        from loopstack.store import open_stores

        stores = open_stores()
    if events is None:
        from loopstack.store.events import EventLog

        events = EventLog(stores, project_id=project_id)
    obs = Observation(endpoint, since, until_)
    obs.feature_lag_s = _feature_lags(obs, stores, project_id)
    parts = list(window_batches(endpoint, since, until_, events=events))
    tables = [p.table for p in parts if p.table.num_rows]
    obs.requests = sum(p.n_requests for p in parts)
    obs.skipped = sum(p.skipped for p in parts)
    obs.rows = sum(t.num_rows for t in tables)
    if not tables:
        obs.notes.append(f"no predictions of {endpoint!r} in the window")
        return obs
    versions: Counter[tuple[str, str | None]] = Counter()
    for t in tables:
        pairs = zip(t.column("model_version").to_pylist(), t.column("arm").to_pylist(), strict=True)
        versions.update((v, a) for v, a in pairs if v)
    if versions:
        (version, arm), _ = versions.most_common(1)[0]
        obs.model_version = model_version_name(
            endpoint, version, arm, model=model, stores=stores, project_id=project_id
        )
    latencies = np.concatenate(
        [t.column("latency_ms").to_numpy(zero_copy_only=False) for t in tables]
    ).astype(float)
    latencies = latencies[np.isfinite(latencies)]
    if latencies.size:
        obs.latency_p50_ms = float(np.percentile(latencies, 50))
        obs.latency_p99_ms = float(np.percentile(latencies, 99))
    ref_profile = _reference(obs, reference, stores)
    if ref_profile is not None:
        seen = dict.fromkeys(n for t in tables for n in t.column_names)
        columns = _feature_columns(list(seen))
        shared = [c for c in columns if c in ref_profile.columns]
        current = _window_profile(parts, ref_profile, shared, SegmentCache())
        if current is not None:
            ref_shared = Profile(ref_profile.num_rows, {c: ref_profile.columns[c] for c in shared})
            obs.drift = drift(ref_shared, current, **(drift_options or {}))
            schema = _input_schema(obs.model_version) if reference is None else {}
            keep = set(shared) | (set(schema) & set(ref_profile.columns))
            ref_inputs = Profile(
                ref_profile.num_rows, {c: p for c, p in ref_profile.columns.items() if c in keep}
            )
            obs.quality = quality(ref_inputs, current, schema=schema or None)
    flat = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    if "prediction" in flat.columns:
        frame = _performance_frame(flat, events, since)
        win = bucket  # None: the whole window as one
        if frame["label"].notna().any():
            obs.performance = performance(frame, window=win)
        if any(c.startswith("proba_") for c in frame.columns):
            try:
                obs.estimated = estimate_performance(frame, window=win)
            except Invalid as exc:
                obs.notes.append(f"no performance estimate: {exc}")
    kpis = read_kpis(endpoint=endpoint, since=since, until=until_)
    if len(kpis):
        latest = kpis.sort_values("ts").groupby("name")["value"].last()
        obs.kpis = {str(k): float(v) for k, v in latest.items()}
    return obs


def model_version_name(
    endpoint: str,
    version: str,
    arm: str | None,
    *,
    model: str | None = None,
    stores: Stores | None = None,
    project_id: int = 0,
) -> str:
    """``"name/version"`` of a logged version number: the model of the deployment's
    ``arm`` (or of its primary), else ``model``, else the endpoint's own name."""
    if "/" in version:
        return version
    if model is None and stores is not None:
        from loopstack.serving._sql_deployments import SqlDeployments

        try:
            deployment = SqlDeployments(stores, project_id=project_id).get(endpoint)
        except LoopstackError:
            deployment = None
        if deployment is not None:
            arms = [a for a in deployment.arms if a.name == arm] or [
                a for a in deployment.arms if str(a.version) == version
            ]
            chosen = arms[0] if arms else deployment.primary
            if chosen is not None:
                model = chosen.model
    return f"{model or endpoint}/{version}"


def _feature_lags(obs: Observation, stores: Stores, project_id: int) -> dict[str, float]:
    """Freshness of the online store that the endpoint's deployment enriches from."""
    from loopstack.serving._sql_deployments import SqlDeployments

    try:
        deployment = SqlDeployments(stores, project_id=project_id).get(obs.endpoint)
    except LoopstackError:
        return {}
    enrichment = (deployment.options or {}).get("enrichment")
    if not isinstance(enrichment, dict):
        return {}
    from loopstack.features import FeatureStore

    try:
        store = FeatureStore(project=project_id or None, online_url=enrichment.get("online_url"))
        views = store.freshness()
    except LoopstackError as exc:
        obs.notes.append(f"no feature freshness: {exc}")
        return {}
    return {v.view: float(v.lag_seconds) for v in views if v.lag_seconds is not None}


def _input_schema(model_version: str | None) -> dict[str, str]:
    """{input column: dtype} of a registered version's column signature ({} if none)."""
    if model_version is None or "/" not in model_version:
        return {}
    from loopstack.monitoring._reference import resolve_model_version

    try:
        signature = resolve_model_version(model_version).signature or {}
    except LoopstackError:
        return {}
    inputs = signature.get("inputs") or {}
    if not isinstance(inputs, dict) or inputs.get("type") != "columns":
        return {}
    return {
        str(c["name"]): str(c["dtype"])
        for c in inputs.get("columns") or []
        if isinstance(c, dict) and c.get("name") and c.get("dtype")
    }


def _reference(obs: Observation, reference: Any, stores: Stores) -> Profile | None:
    from loopstack.monitoring._profile import Profile
    from loopstack.monitoring._profiling import profile

    if isinstance(reference, Profile):
        return reference
    if reference is not None:
        return profile(reference)
    if obs.model_version is None:
        obs.notes.append("the window's predictions name no model version: no reference")
        return None
    name = obs.model_version
    if "/" not in name:
        return None
    try:
        return reference_profile(name, stores=stores)
    except (NotFound, Invalid) as exc:
        obs.notes.append(f"no reference for {name}: {exc}")
        return None


def _endpoints(stores: Stores, project_id: int) -> list[str]:
    from loopstack.serving._sql_deployments import SqlDeployments

    try:
        deployments = SqlDeployments(stores, project_id=project_id).list_deployments()
        return sorted(d.name for d in deployments)
    except LoopstackError:
        return []


def monitor_once(
    store: AlertStore,
    endpoints: list[str] | None = None,
    *,
    window: Any = "1h",
    until: Any = None,
    stores: Stores | None = None,
) -> list[tuple[Observation, list[AlertEvent]]]:
    """One evaluation: each endpoint observed over ``window`` and its metrics handed to
    the alert rules labelled with that endpoint (or with none). ``endpoints`` defaults
    to every stored deployment of the store's project."""
    if stores is None:
        from loopstack.store import open_stores

        stores = open_stores()
    names = endpoints if endpoints is not None else _endpoints(stores, store.project_id)
    out = []
    for name in names:
        obs = observe(name, window, until=until, stores=stores, project_id=store.project_id)
        at = obs.until.timestamp()
        events = store.evaluate(obs.metrics(), labels={"endpoint": name}, now=at)
        out.append((obs, events))
    return out
