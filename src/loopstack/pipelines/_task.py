"""What an executor runs for one step: a picklable task and the function that runs it.

The worker (this process, a forked child or a Ray worker) opens the same artifact
store from the task's settings, loads the inputs, calls the step, encodes and stores
each output itself and returns only the references.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopstack.errors import Invalid
from loopstack.pipelines._artifacts import ArtifactRef, load_artifact, store_artifact
from loopstack.pipelines._steps import Step

__all__ = ["StepContext", "StepTask", "current_step", "run_step_task", "task_callable"]


@dataclass(frozen=True)
class StepContext:
    """Where a running step is: its cache key (checkpoints key on it) and stores."""

    node: str
    cache_key: str
    db_url: str
    artifacts_url: str
    home: str
    project_id: int


@dataclass(frozen=True)
class StepTask:
    """One step call to run: the step (pickled by reference), inputs, params, stores."""

    step: Step
    node: str
    inputs: dict[str, dict[str, Any]]
    params: dict[str, Any]
    context: StepContext


_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "loopstack_current_step", default=None
)


def current_step() -> StepContext | None:
    """The step running in this thread, if any."""
    return _CURRENT.get()


def _blobs(context: StepContext) -> Any:
    from loopstack.store.artifacts import open_blob_store

    return open_blob_store(context.artifacts_url)


def run_step_task(task: StepTask) -> list[dict[str, Any]]:
    """Load the inputs, run the step, store its outputs; their references."""
    blobs = _blobs(task.context)
    kwargs = dict(task.params)
    for param, ref in task.inputs.items():
        kwargs[param] = load_artifact(blobs, ArtifactRef.from_dict(ref))
    token = _CURRENT.set(task.context)
    try:
        value = task.step.fn(**kwargs)
    finally:
        _CURRENT.reset(token)
    declared = task.step.return_types()
    if task.step.outputs is None:
        return [store_artifact(blobs, task.node, value, declared[None]).to_dict()]
    outputs = task.step.outputs
    if not isinstance(value, (tuple, list)) or len(value) != len(outputs):
        raise Invalid(
            f"step {task.node!r} declares the outputs {list(outputs)}, so it must return a "
            f"tuple of {len(outputs)}; got {type(value).__name__} instead"
        )
    return [
        store_artifact(blobs, f"{task.node}.{name}", item, declared[name]).to_dict()
        for name, item in zip(outputs, value, strict=True)
    ]


def task_callable(task: StepTask) -> Callable[[], list[dict[str, Any]]]:
    """The zero-argument picklable callable an executor runs."""
    return functools.partial(run_step_task, task)
