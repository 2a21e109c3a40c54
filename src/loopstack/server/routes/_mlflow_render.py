"""Loopstack tracking entities as the JSON shapes of MLflow's protos (service.proto).

Artifact locations are rendered as ``mlflow-artifacts:`` URIs so the MLflow client
uploads and downloads through this server's proxy, whose paths are loopstack's
logical artifact paths (``<experiment>/<run>/artifacts/...``).
"""

from __future__ import annotations

from typing import Any

from loopstack.errors import Invalid
from loopstack.store.artifacts import sanitize_path
from loopstack.tracking._entities import (
    DatasetInput,
    Experiment,
    Metric,
    Run,
    metric_value_to_json,
)

__all__ = [
    "ARTIFACT_SCHEME",
    "artifact_uri",
    "dataset_input",
    "experiment",
    "key_values",
    "metric",
    "run",
    "run_info",
    "sample_steps",
]

ARTIFACT_SCHEME = "mlflow-artifacts:"


def artifact_uri(logical: str) -> str:
    """``"1/abc/artifacts"`` -> ``"mlflow-artifacts:/1/abc/artifacts"``.

    A location stored with a scheme (an experiment created natively with an explicit
    location) is rendered through the same normalisation the proxy applies to paths,
    so what the MLflow client writes is what loopstack's own API reads.
    """
    try:
        path = sanitize_path(logical.replace("://", ":/"), allow_empty=True)
    except Invalid:
        path = logical.strip("/")
    return f"{ARTIFACT_SCHEME}/{path}"


def key_values(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def experiment(exp: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": artifact_uri(exp.artifact_location),
        "lifecycle_stage": exp.lifecycle_stage,
        "last_update_time": exp.last_update_time,
        "creation_time": exp.creation_time,
        "tags": key_values(exp.tags),
    }


def run_info(r: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": r.run_id,
        "run_uuid": r.run_id,
        "run_name": r.run_name,
        "experiment_id": r.experiment_id,
        "user_id": r.user_id,
        "status": r.status,
        "start_time": r.start_time,
        "artifact_uri": artifact_uri(r.artifact_uri),
        "lifecycle_stage": r.lifecycle_stage,
    }
    if r.end_time is not None:
        info["end_time"] = r.end_time
    return info


def metric(m: Metric, run_id: str | None = None) -> dict[str, Any]:
    """A metric point as MLflow's server renders it (protobuf JSON: a NaN is ``"NaN"``)."""
    out: dict[str, Any] = {
        "key": m.key,
        "value": metric_value_to_json(m.value),
        "timestamp": m.timestamp,
        "step": m.step,
    }
    if run_id is not None:
        out["run_id"] = run_id
    return out


def dataset_input(d: DatasetInput) -> dict[str, Any]:
    dataset: dict[str, Any] = {
        "name": d.name,
        "digest": d.digest,
        "source_type": d.source_type,
        "source": d.source,
    }
    if d.schema is not None:
        dataset["schema"] = d.schema
    if d.profile is not None:
        dataset["profile"] = d.profile
    return {"tags": key_values(d.tags), "dataset": dataset}


def run(r: Run) -> dict[str, Any]:
    return {
        "info": run_info(r),
        "data": {
            "metrics": [metric(m) for m in r.latest_metrics],
            "params": key_values(r.params),
            "tags": key_values(r.tags),
        },
        "inputs": {"dataset_inputs": [dataset_input(d) for d in r.inputs]},
    }


def sample_steps(steps: list[int], max_results: int) -> set[int]:
    """At most ``max_results`` steps, evenly spread, always with the first and the last."""
    if len(steps) <= max_results:
        return set(steps)
    if max_results == 1:
        return {steps[0]}
    stride = (len(steps) - 1) / (max_results - 1)
    return {steps[round(i * stride)] for i in range(max_results)}
