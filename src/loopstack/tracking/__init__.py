"""Experiment tracking: experiments, runs, params, metrics, tags, artifacts, dataset inputs."""

from loopstack.tracking._client import TrackingClient, runs_to_frame
from loopstack.tracking._entities import DatasetInput, Experiment, Metric, Run, RunStatus
from loopstack.tracking._fluent import (
    ActiveRun,
    active_run,
    compare_runs,
    end_run,
    flush,
    get_run,
    log_artifact,
    log_artifacts,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
)
from loopstack.tracking._store import TrackingStore

__all__ = [
    "ActiveRun",
    "DatasetInput",
    "Experiment",
    "Metric",
    "Run",
    "RunStatus",
    "TrackingClient",
    "TrackingStore",
    "active_run",
    "compare_runs",
    "end_run",
    "flush",
    "get_run",
    "log_artifact",
    "log_artifacts",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "runs_to_frame",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]
