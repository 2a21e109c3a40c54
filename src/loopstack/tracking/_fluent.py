"""The fluent API: ``with ls.start_run(...) as run: ls.log_metric(...)``.

Thin wrappers over ``TrackingClient``. The active run lives in a
``contextvars.ContextVar`` (a stack, for nested runs), never in a module global.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from loopstack.config import settings
from loopstack.errors import Conflict, Invalid, NotFound
from loopstack.tracking._arguments import mapping, text
from loopstack.tracking._buffer import MetricBuffer
from loopstack.tracking._client import TrackingClient, runs_to_frame
from loopstack.tracking._entities import (
    MAX_TAG_VALUE_LENGTH,
    Metric,
    Run,
    RunStatus,
    now_ms,
    validate_metric,
)
from loopstack.tracking._environment import environment_tags, installed_packages
from loopstack.tracking._inputs import dataset_input

__all__ = [
    "ActiveRun",
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
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]

_stack: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
    "loopstack_active_runs", default=()
)
_open_runs: set[ActiveRun] = set()
_open_lock = threading.Lock()


class ActiveRun:
    """A run being logged to. Use it as a context manager, or call ``end()``."""

    def __init__(self, client: TrackingClient, run: Run) -> None:
        self.client = client
        self.run_id = run.run_id
        self.experiment_id = run.experiment_id
        self.info = run
        self._buffer = MetricBuffer(self._write_metrics)
        self._ended = False
        self._token: contextvars.Token[tuple[ActiveRun, ...]] | None = None
        with _open_lock:
            _open_runs.add(self)

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} experiment={self.experiment_id}>"

    def _write_metrics(self, points: list[Metric]) -> None:
        self.client.store.log_batch(self.run_id, metrics=points)

    # -- logging --------------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer one point; it is written in a batch (checked now, so errors surface here)."""
        k, v, s, t = validate_metric(
            key, value, 0 if step is None else step, now_ms() if timestamp is None else timestamp
        )
        self._buffer.add([Metric(k, v, s, t)])

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Buffer one point per key of ``metrics`` at ``step`` (each checked now)."""
        ts = now_ms() if timestamp is None else timestamp
        points = [
            Metric(*validate_metric(k, v, 0 if step is None else step, ts))
            for k, v in mapping(metrics, "metrics").items()
        ]
        self._buffer.add(points)

    def log_param(self, key: str, value: Any) -> None:
        """Record a param (stored as text, as in MLflow); written now."""
        self.client.log_batch(self.run_id, params={key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Record several params in one write."""
        self.client.log_batch(self.run_id, params=params)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (a later value replaces an earlier one); written now."""
        self.client.log_batch(self.run_id, tags={key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Set several tags in one write."""
        self.client.log_batch(self.run_id, tags=tags)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Store a file, or a directory with everything under it, with the run."""
        self.client.log_artifact(self.run_id, local_path, artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Store the contents of ``local_dir`` under ``artifact_path`` (MLflow's semantics)."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise Invalid(f"expected a directory; got {str(local_dir)!r}", field="local_dir")
        for child in sorted(local_dir.iterdir()):
            sub = (
                (f"{artifact_path}/{child.name}" if artifact_path else child.name)
                if child.is_dir()
                else artifact_path
            )
            self.client.log_artifact(self.run_id, child, sub)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store ``text`` as the artifact ``artifact_file`` (e.g. ``"notes/summary.md"``)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            path.write_text(text)
            parent = str(Path(artifact_file).parent)
            self.log_artifact(path, None if parent == "." else parent)

    def log_input(self, data: Any, *, name: str | None = None, context: str | None = None) -> str:
        """Record a dataset the run read (DataFrame, Arrow table, array, path); returns digest."""
        ds = dataset_input(data, name=name, context=context)
        self.client.log_inputs(self.run_id, [ds])
        return ds.digest

    def log_model(
        self,
        model: Any,
        *,
        name: str | None = None,
        artifact_path: str = "model",
        sample_input: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Package ``model`` (flavor detected) into the run; with ``name``, register a version.

        Returns the new ``ModelVersion`` (or None without ``name``).
        """
        from loopstack.tracking._hooks import model_logger

        return model_logger()(
            self.run_id,
            model,
            name=name,
            artifact_path=artifact_path,
            sample_input=sample_input,
            **kwargs,
        )

    def flush(self) -> int:
        """Write every buffered metric point now; returns how many were written."""
        return self._buffer.flush()

    # -- lifecycle ------------------------------------------------------------------
    def end(self, status: str = RunStatus.FINISHED) -> None:
        """Write what is buffered and end the run with ``status`` (once; later calls do nothing)."""
        if self._ended:
            return
        try:
            self._buffer.close(
                lambda points: self.client.store.end_run(self.run_id, status, metrics=points)
            )
        except BaseException:
            if status == RunStatus.FINISHED:
                raise
            # Failing anyway: still record how the run ended, without the last points.
            self.client.store.end_run(self.run_id, status)
            raise
        finally:
            self._ended = True
            with _open_lock:
                _open_runs.discard(self)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        try:
            self.end(status)
        finally:
            self._pop()

    def _pop(self) -> None:
        if self._token is not None:
            try:
                _stack.reset(self._token)
            except ValueError:  # exited in another context: drop ourselves from it
                _stack.set(tuple(r for r in _stack.get() if r is not self))
            self._token = None


def _client() -> TrackingClient:
    return TrackingClient()


# (store and project, experiment name) -> id, so a training loop's start_run does not look
# the name up every time; create_run still checks the experiment exists and is active.
_experiment_ids: dict[tuple[str, str], str] = {}


def _store_key(client: TrackingClient) -> str:
    store: Any = client.store
    where = getattr(getattr(store, "db", None), "url", None) or getattr(store, "base_url", "")
    # names are unique per project: the same name is another experiment in another project
    project = getattr(store, "project_id", None)
    if project is None:
        project = getattr(getattr(store, "client", None), "project", None)
    return f"{where}#{project}"


def _default_experiment(client: TrackingClient) -> str:
    """Where a run without an experiment goes: MLflow's Default (id 0) in the default
    project, and a ``Default`` experiment of its own in any other."""
    project = settings().project
    if not project or project == "default":
        return "0"
    return _experiment_id(client, "Default")


def _experiment_id(client: TrackingClient, name: str, *, fresh: bool = False) -> str:
    key = (_store_key(client), name)
    found = None if fresh else _experiment_ids.get(key)
    if found is None:
        found = _experiment_ids[key] = client.set_experiment(name)
    return found


def start_run(
    experiment: str | None = None,
    run_name: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = False,
    run_id: str | None = None,
    capture_env: bool = True,
) -> ActiveRun:
    """Start (or, with ``run_id``, resume) a run and make it the active one.

    >>> with ls.start_run(experiment="churn", params={"lr": 0.1}) as run:
    ...     ls.log_metric("auc", 0.91, step=1)
    """
    params, tags = mapping(params, "params") or None, mapping(tags, "tags")
    stack = _stack.get()
    if stack and not nested:
        raise Conflict(
            f"run {stack[-1].run_id} is already active; end it first, or pass "
            "nested=True to start a child run"
        )
    client = _client()
    if run_id is not None:
        run = client.get_run(run_id)
        if run.status != RunStatus.RUNNING:
            run = client.store.update_run(run_id, status=RunStatus.RUNNING)
    else:
        experiment_id = (
            _experiment_id(client, experiment)
            if experiment
            else (stack[-1].experiment_id if stack else _default_experiment(client))
        )
        all_tags: dict[str, str] = environment_tags() if capture_env else {}
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        if stack:
            all_tags["mlflow.parentRunId"] = stack[-1].run_id
        reproduces = os.environ.get("LOOPSTACK_REPRODUCES")
        if reproduces:  # started by `loopstack runs reproduce`
            all_tags["loopstack.reproduces"] = reproduces
        try:
            run = client.create_run(experiment_id, run_name=run_name, tags=all_tags, params=params)
        except (NotFound, Conflict):
            if not experiment:
                raise
            # The remembered id went stale (the experiment was deleted): look it up again.
            experiment_id = _experiment_id(client, experiment, fresh=True)
            run = client.create_run(experiment_id, run_name=run_name, tags=all_tags, params=params)
        params = None  # written with the run
        if capture_env and len(installed_packages()) > MAX_TAG_VALUE_LENGTH:
            # The tag holds only the first 8,000 characters: keep the whole list too.
            from loopstack.tracking._reproduce_env import record_requirements

            record_requirements(run.run_id, client)
    active = ActiveRun(client, run)
    active._token = _stack.set(stack + (active,))
    if params:
        try:
            active.log_params(params)
        except BaseException:
            active.end(RunStatus.FAILED)
            active._pop()
            raise
    return active


def active_run() -> ActiveRun | None:
    """The innermost active run of this context, if any."""
    stack = _stack.get()
    return stack[-1] if stack else None


def _require_run() -> ActiveRun:
    run = active_run()
    if run is None:
        raise Conflict("no active run: start one with `with ls.start_run(...):` first")
    return run


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the active run with ``status`` (FINISHED by default), writing what is buffered.

    With no active run this does nothing, as ``mlflow.end_run()``: a script may call it
    defensively at its end.
    """
    run = active_run()
    if run is None:
        return
    try:
        run.end(status)
    finally:
        run._pop()


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Log one point of metric ``key`` to the active run (buffered, checked now).

    >>> ls.log_metric("loss", 0.31, step=12)
    """
    _require_run().log_metric(key, value, step, timestamp)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log one point per key of ``metrics`` to the active run.

    >>> ls.log_metrics({"loss": 0.31, "auc": 0.91}, step=12)
    """
    _require_run().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    """Record a param of the active run (stored as text).

    >>> ls.log_param("lr", 0.1)
    """
    _require_run().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    """Record several params of the active run in one write.

    >>> ls.log_params({"lr": 0.1, "depth": 6})
    """
    _require_run().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """Set a tag of the active run.

    >>> ls.set_tag("team", "churn")
    """
    _require_run().set_tag(key, value)


def set_tags(tags: dict[str, Any]) -> None:
    """Set several tags of the active run in one write."""
    _require_run().set_tags(tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> None:
    """Store a file (or a directory) with the active run, under ``artifact_path``.

    >>> ls.log_artifact("report.html", "reports")
    """
    _require_run().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> None:
    """Store the contents of ``local_dir`` with the active run (MLflow's semantics)."""
    _require_run().log_artifacts(local_dir, artifact_path)


def log_input(data: Any, *, name: str | None = None, context: str | None = None) -> str:
    """Record a dataset the active run read; returns its content digest.

    >>> ls.log_input(train_df, name="train", context="training")
    """
    return _require_run().log_input(data, name=name, context=context)


def flush() -> int:
    """Write the active run's buffered metrics now."""
    return _require_run().flush()


def set_experiment(name: str) -> str:
    """The id of the experiment ``name``, created if needed."""
    return _client().set_experiment(name)


def get_run(run_id: str) -> Run:
    """A run with its params, latest metrics, tags and inputs (``run.info``/``run.data``
    as in MLflow).

    >>> ls.get_run(run_id).data.metrics["auc"]
    """
    return _client().get_run(run_id)


def search_runs(
    experiment: str | list[str] | None = None,
    filter: str = "",
    *,
    order_by: list[str] | None = None,
    max_results: int = 1000,
    view: str = "active",
) -> Any:
    """Runs as a pandas DataFrame; ``experiment`` is a name or id (or a list of them).

    >>> ls.search_runs("churn", filter="metrics.auc > 0.9 and params.model = 'gbm'",
    ...                order_by=["metrics.auc DESC"])
    """
    filter = text(filter, "filter")
    client = _client()
    if experiment is not None and not isinstance(experiment, str | list | tuple):
        raise Invalid(
            "experiment must be a name or id, or a list of them; got "
            f"{type(experiment).__name__} instead",
            field="experiment",
        )
    default = [_default_experiment(client)] if experiment is None else []
    names = [experiment] if isinstance(experiment, str) else list(experiment or default)
    ids = []
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            if not name.isdigit():
                raise NotFound(f"no experiment named {name!r}")
            exp = client.get_experiment(name)
        ids.append(exp.experiment_id)
    runs = client.search_runs(ids, filter, order_by=order_by, max_results=max_results, view=view)
    return runs_to_frame(runs)


def compare_runs(run_ids: list[str]) -> Any:
    """Params and latest metrics of several runs side by side (rows: keys; columns: runs)."""
    import pandas as pd

    if not run_ids:
        raise Invalid("expected at least one run id to compare; got none", field="run_ids")
    client = _client()
    runs = [client.get_run(r) for r in run_ids]
    data = {}
    for r in runs:
        col: dict[str, Any] = {"run_name": r.run_name, "status": r.status}
        col.update({f"params.{k}": v for k, v in r.params.items()})
        col.update({f"metrics.{k}": v for k, v in r.metrics.items()})
        data[r.run_id] = col
    return pd.DataFrame(data)


@atexit.register
def _end_open_runs() -> None:
    """At interpreter exit, flush what is buffered and finish runs left open."""
    with _open_lock:
        runs = list(_open_runs)
    for run in runs:
        # The interpreter is exiting: there is nobody left to report a failure to.
        with contextlib.suppress(Exception):
            run.end(RunStatus.FINISHED)
