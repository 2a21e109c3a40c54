"""``build_report(endpoint, window)``: a first ``MonitoringReport`` from what is stored now.

It gathers, each step on its own so more can be wired in beside them:

- ``alerts``: the alert history of the project (``AlertStore``), folded into incidents,
  kept when the rule's ``endpoint`` label is the endpoint or the rule has none;
- ``volume``: requests and model rows per bucket, from the ``predictions`` stream;
- ``drift`` and ``distributions``: the window's model inputs against a reference
  (a DataFrame, a pyarrow Table, a Parquet path or a dataset version).

- ``performance``, ``estimated``, ``quality``: through ``observe`` (delayed labels joined
  by request id, the CBPE estimate, quality against the reference profile);
- ``kpis``: the business KPIs logged for the endpoint in the window.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid
from loopstack.monitoring._monitor_report import MonitoringReport, feature_distributions

if TYPE_CHECKING:
    import pyarrow as pa

    from loopstack.store import Stores

__all__ = ["alert_incidents", "build_report", "parse_window"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(value: Any) -> float:
    """Seconds from a positive number or text like ``'90s'``, ``'30m'``, ``'36h'``, ``'7d'``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    raise Invalid(
        f"a window must be positive seconds or text like '30m', '36h', '7d'; got {value!r} instead",
        field="window",
    )


def alert_incidents(
    history: list[dict[str, Any]], *, endpoint: str | None = None
) -> list[dict[str, Any]]:
    """``AlertStore.history`` rows folded into one dict per incident (a firing and its
    resolution): rule, severity, state ("firing" or "resolved"), first_seen, last_seen,
    message, metric, value, labels. Oldest first. With ``endpoint``, only rules labelled
    with that endpoint or with no endpoint label."""
    open_: dict[tuple[str, Any], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for h in history:
        labels = h.get("labels") or {}
        if endpoint is not None and labels.get("endpoint", endpoint) != endpoint:
            continue
        key = (h["rule"], h.get("started_at"))
        message = (
            f"{h['metric']} {h['comparison']} {h['threshold']:g}: value {h['value']:.4g}"
            if h.get("value") is not None
            else f"{h['metric']} {h['comparison']} {h['threshold']:g}"
        )
        if h["kind"] == "fired" or key not in open_:
            incident = {
                "rule": h["rule"],
                "severity": h["severity"],
                "category": h.get("category"),
                "state": "firing",
                "first_seen": h.get("started_at") or h["at"],
                "last_seen": h["at"],
                "metric": h["metric"],
                "value": h.get("value"),
                "labels": labels,
                "message": message,
            }
            open_[key] = incident
            out.append(incident)
        if h["kind"] == "resolved":
            incident = open_.pop(key)
            incident.update(state="resolved", last_seen=h["at"], value=h.get("value"))
            incident["message"] = f"resolved: {message}"
    return out


def read_table(source: Any, role: str = "reference") -> Any:
    """``source`` as it is, or the Parquet file it names read as a pyarrow Table."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise Invalid(f"no {role} file at {path}", field=role)
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors name no common base
            raise Invalid(f"cannot read the {role} {path} as Parquet: {exc}", field=role) from exc
    return source


def training_reference(model_version: str) -> Any:
    """The training data of ``model_version`` (``"name/version"``): the windows work
    package's ``reference_table`` when present, else the first registered dataset
    version upstream of it in the lineage (``run.log_input(dataset_version)``)."""
    from importlib import import_module

    try:
        return import_module("loopstack.monitoring._reference").reference_table(model_version)
    except (ImportError, AttributeError):
        pass
    if not isinstance(model_version, str) or "/" not in model_version:
        raise Invalid(
            f"a model version is NAME/VERSION (churn/3); got {model_version!r} instead",
            field="model_version",
        )
    from loopstack.data import get_dataset
    from loopstack.registry import lineage

    graph = lineage(f"model_version:{model_version}")
    found = [n for n in graph.upstream if n.startswith("dataset_version:")]
    if not found:
        raise Invalid(
            f"model version {model_version} has no registered dataset version upstream in "
            "its lineage (log it with run.log_input); give a reference instead",
            field="model_version",
        )
    name, _, version = found[0].removeprefix("dataset_version:").rpartition("/")
    return get_dataset(name, int(version))


def inputs_frame(predictions: pa.Table) -> Any:
    """The model rows of a ``predictions`` table as a DataFrame, one per row of each
    request's ``inputs`` (a list of records, columns ``{name: [values]}``, or one record).

    ``monitoring.flatten_predictions`` replaces this when present."""
    import pandas as pd

    try:  # the windows work package's flattening, when it is in the tree
        from importlib import import_module

        flatten_predictions = import_module("loopstack.monitoring._window").flatten_predictions
    except (ImportError, AttributeError):
        flatten_predictions = None
    if flatten_predictions is not None:
        flat = flatten_predictions(predictions).to_pandas()
        drop = {"ts", "request_id", "row", "endpoint", "model_version", "arm", "latency_ms"}
        return flat[[c for c in flat.columns if c not in drop]]
    records: list[dict[str, Any]] = []
    for text in predictions.column("inputs").to_pylist() if predictions.num_rows else []:
        if text is None:
            continue
        value = json.loads(text)
        if isinstance(value, list):
            records.extend(r for r in value if isinstance(r, dict))
        elif isinstance(value, dict):
            lists = [v for v in value.values() if isinstance(v, list)]
            if lists and len(lists) == len(value):
                n = min(len(v) for v in lists)
                records.extend({k: v[i] for k, v in value.items()} for i in range(n))
            else:
                records.append(value)
    return pd.DataFrame.from_records(records)


def _rows_of(text: str | None) -> int:
    if text is None:
        return 0
    value = json.loads(text)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if lists and len(lists) == len(value):
            return min(len(v) for v in lists)
    return 1


def _volume(predictions: pa.Table, start: float, bucket: float) -> list[dict[str, Any]]:
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    if predictions.num_rows:
        ts = predictions.column("ts").to_pylist()
        inputs = predictions.column("inputs").to_pylist()
        for t, text in zip(ts, inputs, strict=True):
            i = int((t.timestamp() - start) // bucket)
            counts[i][0] += 1
            counts[i][1] += _rows_of(text)
    return [
        {"window_start": start + i * bucket, "requests": req, "rows": rows}
        for i, (req, rows) in sorted(counts.items())
    ]


def build_report(
    endpoint: str,
    window: Any = "7d",
    *,
    until: Any = None,
    reference: Any = None,
    model_version: str | None = None,
    current: Any = None,
    stores: Stores | None = None,
    project_id: int = 0,
    bucket: Any = None,
    drift_options: dict[str, Any] | None = None,
) -> MonitoringReport:
    """A ``MonitoringReport`` of ``endpoint`` over the ``window`` before ``until`` (now).

    ``reference``: a DataFrame, pyarrow Table, Parquet path or dataset version to
    compare the window's model inputs with (no drift section without it). ``current``
    replaces the inputs read from the prediction log. ``bucket``: the volume's bucket
    (default: an hour for windows up to two days, else a day).

    >>> build_report("churn", "7d", reference="train.parquet").write("churn.html")  # doctest: +SKIP
    """
    from loopstack.monitoring._monitor_report import as_time

    if not isinstance(endpoint, str) or not endpoint:
        raise Invalid(f"'endpoint' must be a non-empty string; got {endpoint!r}", field="endpoint")
    seconds = parse_window(window)
    end = as_time(until if until is not None else time.time(), "until")
    start = end - dt.timedelta(seconds=seconds)
    step = (
        parse_window(bucket) if bucket is not None else (3600.0 if seconds <= 172800 else 86400.0)
    )
    if stores is None:
        from loopstack.store import open_stores

        stores = open_stores()

    from loopstack.monitoring._alert_store import AlertStore
    from loopstack.store.events import EventLog

    history = AlertStore(stores, project_id=project_id).history(
        since=start.timestamp() - 30 * 86400, limit=10000
    )
    alerts = [
        a
        for a in alert_incidents(history, endpoint=endpoint)
        if a["state"] == "firing" or a["last_seen"] >= start.timestamp()
    ]
    predictions = EventLog(stores, project_id=project_id).read(
        "predictions", since=start, until=end, where={"endpoint": endpoint}
    )
    if "shadow" in predictions.column_names:
        import pyarrow.compute as pc

        predictions = predictions.filter(pc.invert(pc.fill_null(predictions["shadow"], False)))
    volume = (
        _volume(predictions, start.timestamp(), step)
        if "inputs" in predictions.column_names
        else []
    )
    drift_report, dists = None, []
    if reference is None and model_version is not None:
        reference = training_reference(model_version)
    if reference is not None:
        from loopstack.monitoring._drift import drift

        ref = read_table(reference)
        cur = read_table(current, "current") if current is not None else None
        if cur is None:
            if "inputs" not in predictions.column_names or predictions.num_rows == 0:
                raise Invalid(
                    f"no predictions of endpoint {endpoint!r} between {start:%Y-%m-%d %H:%M} "
                    f"and {end:%Y-%m-%d %H:%M} UTC to compare with the reference"
                )
            cur = inputs_frame(predictions)
        from loopstack.monitoring._drift import _as_frame

        ref_df, cur_df = _as_frame(ref, "reference"), _as_frame(cur, "current")
        shared = [c for c in ref_df.columns if c in cur_df.columns]
        if not shared:
            raise Invalid(
                f"the reference and the window share no column; reference has "
                f"{list(ref_df.columns)[:10]}, the window {list(cur_df.columns)[:10]}",
                field="reference",
            )
        drift_report = drift(ref_df[shared], cur_df[shared], **(drift_options or {}))
        dists = feature_distributions(ref_df[shared], cur_df[shared])
    sections = _observed(endpoint, start, end, step, reference, stores, project_id, volume)
    return MonitoringReport(
        endpoint,
        start,
        end,
        drift=drift_report,
        distributions=dists,
        volume=volume,
        alerts=alerts,
        **sections,
    )


def _observed(
    endpoint: str,
    start: dt.datetime,
    end: dt.datetime,
    step: float,
    reference: Any,
    stores: Stores,
    project_id: int,
    volume: list[dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Performance (realised and estimated), quality and KPIs of the window, through
    ``observe``; empty sections where it has nothing to go on."""
    from loopstack.errors import LoopstackError
    from loopstack.monitoring._kpis import read_kpis
    from loopstack.monitoring._monitor import observe
    from loopstack.monitoring._report_sections import observed_sections

    kpis = read_kpis(endpoint=endpoint, since=start, until=end)
    empty: dict[str, list[dict[str, Any]]] = {"performance": [], "estimated": [], "quality": []}
    if not volume:
        return {**empty, **observed_sections(_nothing(endpoint, start, end), kpis)}
    ref = read_table(reference) if reference is not None else None
    try:
        obs = observe(
            endpoint,
            (end - start).total_seconds(),
            until=end,
            reference=ref,
            bucket=f"{int(step)}s",
            stores=stores,
            project_id=project_id,
        )
    except LoopstackError as exc:  # the report still shows what it has
        import logging

        logging.getLogger("loopstack.monitoring").warning("report sections skipped: %s", exc)
        obs = _nothing(endpoint, start, end)
    return observed_sections(obs, kpis)


def _nothing(endpoint: str, start: dt.datetime, end: dt.datetime) -> Any:
    from loopstack.monitoring._monitor import Observation

    return Observation(endpoint, start, end)
