"""How runs' metrics and registrations reach the logged models they concern."""

from __future__ import annotations

import json
from collections import defaultdict

from loopstack.tracking._entities import Metric
from loopstack.tracking._logged_model_search import ModelMetric
from loopstack.tracking._logged_models import LoggedModelStore
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["MODEL_VERSIONS_TAG", "log_run_metrics", "record_registration"]

#: the tag on a logged model listing the registered versions made from it (as MLflow)
MODEL_VERSIONS_TAG = "mlflow.modelVersions"


def log_run_metrics(
    models: LoggedModelStore,
    run_id: str,
    points: list[Metric],
    on: list[tuple[str, str, str] | None],
) -> None:
    """Log points to the run; a point with ``on[i] = (model_id, dataset_name,
    dataset_digest)`` to that logged model too.

    A point the run already holds exactly (key, value, step, timestamp) is not logged
    to the run twice: MLflow 3 clients send a run's metrics again with the model's id
    when they log a model, and an MLflow server keeps one copy of each point.
    """
    by_model: dict[str, list[ModelMetric]] = defaultdict(list)
    for point, where in zip(points, on, strict=True):
        if where is not None:
            model_id, dataset_name, dataset_digest = where
            by_model[model_id].append(
                ModelMetric(
                    point.key,
                    point.value,
                    point.timestamp,
                    point.step,
                    run_id,
                    dataset_name,
                    dataset_digest,
                )
            )
    fresh = list(points)
    if by_model:
        held = {
            (m.key, m.value, m.step, m.timestamp)
            for key in {p.key for p in points}
            for m in models.tracking.get_metric_history(run_id, key)
        }
        fresh = [p for p in points if (p.key, p.value, p.step, p.timestamp) not in held]
    for model_id, model_points in by_model.items():
        models.log_metrics(model_id, model_points)
    if fresh or not by_model:
        models.tracking.log_batch(run_id, metrics=fresh)


def record_registration(tracking: SqlTrackingStore, model_id: str, name: str, version: int) -> None:
    """Add ``{"name", "version"}`` to the logged model's ``mlflow.modelVersions`` tag (once)."""
    models = LoggedModelStore(tracking)
    entry = {"name": name, "version": str(version)}
    try:
        listed = json.loads(models.get(model_id).tags.get(MODEL_VERSIONS_TAG) or "[]")
    except ValueError:
        listed = []
    if not isinstance(listed, list):
        listed = []
    if entry not in listed:
        models.set_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps([*listed, entry])})
