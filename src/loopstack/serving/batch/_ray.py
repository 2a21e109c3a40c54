"""Chunks as Ray tasks: on ``address`` (``auto``, ``ray://...``), else
``LOOPSTACK_RAY_ADDRESS``, else a local Ray started (or attached to) for the job. Each
task writes its own part file into the staging directory, as a local worker does, so
the output is the same; the workers get this process's code path and ``LOOPSTACK_*``
environment (``pipelines``' ``worker_env``). Ray is imported only here."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopstack.serving.batch._plan import Chunk
from loopstack.serving.batch._worker import ChunkDone, Scorer, score_chunk

__all__ = ["run_on_ray"]


def run_on_ray(
    scorer: Scorer,
    todo: list[Chunk],
    staging: Path,
    address: str | None,
    workers: int | None,
    finished: Callable[[ChunkDone], None],
) -> None:
    """Run every chunk of ``todo`` as a Ray task, at most ``workers`` (default: the
    cluster's CPUs) in flight; the first failure cancels the rest and is raised."""
    if not todo:
        return
    from loopstack.pipelines._ray import ADDRESS_ENV, import_ray, worker_env
    from loopstack.serving.batch._job import _args

    ray = import_ray()
    if not ray.is_initialized():
        target = address or os.environ.get(ADDRESS_ENV) or None
        ray.init(
            address=target,
            runtime_env={"env_vars": worker_env()},
            include_dashboard=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    task: Any = ray.remote(max_retries=0, num_cpus=1)(score_chunk)
    limit = max(1, workers or int(ray.cluster_resources().get("CPU", 1)))
    ref_scorer = ray.put(scorer)
    pending = iter(todo)
    running: list[Any] = []

    def submit() -> None:
        chunk = next(pending, None)
        if chunk is not None:
            running.append(task.remote(ref_scorer, *_args(chunk, staging)))

    for _ in range(limit * 2):
        submit()
    while running:
        ready, rest = ray.wait(running, num_returns=1)
        running[:] = rest
        try:
            done = ray.get(ready[0])
        except Exception as exc:
            for ref in running:
                ray.cancel(ref)
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, BaseException) else exc) from None
        finished(done)
        submit()
