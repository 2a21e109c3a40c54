"""Running a pipeline: ready steps in topological order, cached, retried, recorded.

Independent steps run at once, up to the executor's ``max_parallel`` and the project's
step slots (leases ``steps:<project_id>:<i>``, ``LOOPSTACK_PIPELINE_MAX_CONCURRENT_STEPS``).
Each step run is a tracked run (a child of the pipeline's tracked run) with lineage
edges from its input artifacts and to its output artifacts.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, LoopstackError, StepFailed, StepTimeout
from loopstack.pipelines._digest import cache_key, canonical_json, code_digest, environment
from loopstack.pipelines._executors import Executor, executor_for
from loopstack.pipelines._graph import output_refs
from loopstack.pipelines._results import PipelineRun
from loopstack.pipelines._slots import step_slot
from loopstack.pipelines._steps import Node
from loopstack.pipelines._store import SqlPipelineStore, now_ms
from loopstack.pipelines._task import StepContext, StepTask, task_callable

if TYPE_CHECKING:
    from loopstack.pipelines._pipeline import Pipeline
    from loopstack.tracking import TrackingClient

# the pause between a step's attempts; its own name so a test can replace it alone
_backoff_sleep = time.sleep

__all__ = ["run_pipeline"]

log = logging.getLogger("loopstack.pipelines")
_DONE = ("FINISHED", "CACHED")
#: ``on_event(step, status, message)``
StepEvents = Callable[[str, str, str], None]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else canonical_json(value)


class _Run:
    """The state of one pipeline run while it goes."""

    def __init__(
        self,
        pipe: Pipeline,
        values: dict[str, Any],
        store: SqlPipelineStore,
        executor: Executor,
        tracking: TrackingClient,
        run_uuid: str,
        experiment_id: str,
        parent: str,
        on_event: StepEvents | None = None,
    ) -> None:
        from loopstack.config import settings

        self.pipe, self.values, self.store, self.executor = pipe, values, store, executor
        self.tracking, self.run_uuid = tracking, run_uuid
        self.experiment_id, self.parent = experiment_id, parent
        self.config = settings()
        self.limit = self.config.pipeline_max_concurrent_steps
        self.messages: list[str] = []
        self.outputs: dict[str, list[dict[str, Any]]] = {}
        self.on_event = on_event

    def say(self, text: str, step: str | None = None, status: str | None = None) -> None:
        """Log ``text``, keep it in the run's messages, and tell ``on_event`` (when a
        step's status changed: RUNNING, RETRYING, FINISHED, CACHED, REUSED, FAILED, SKIPPED)."""
        log.info(text)
        self.messages.append(text)
        if self.on_event is not None and step is not None and status is not None:
            prefix = f"{step}: "
            self.on_event(step, status, text[len(prefix) :] if text.startswith(prefix) else text)

    def _tags(self, node: Node, hit: bool) -> dict[str, str]:
        return {
            "mlflow.parentRunId": self.parent,
            "loopstack.pipeline": self.pipe.name,
            "loopstack.pipeline_run": self.run_uuid,
            "loopstack.step": node.name,
            "loopstack.cache": "hit" if hit else "miss",
        }

    def _inputs(self, node: Node) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for param, ref in node.inputs.items():
            match = [r for r in self.outputs[ref.node] if r["name"] == ref.label]
            found[param] = match[0]
        return found

    def _edges(self, rid: str, inputs: Mapping[str, dict[str, Any]], outs: list[dict[str, Any]]):
        edges = [("pipeline_artifact", r["sha256"], "run", rid, "input") for r in inputs.values()]
        edges += [("run", rid, "pipeline_artifact", r["sha256"], "produced") for r in outs]
        return edges

    def run_node(self, node: Node) -> list[dict[str, Any]]:
        """Run (or reuse) one node; its output references."""
        step = node.step
        inputs = self._inputs(node)
        params = node.resolved_params(self.values)
        key = cache_key(
            code_digest(step.fn),
            {p: r["sha256"] for p, r in inputs.items()},
            params,
            environment(step.fn),
        )
        if step.cache:
            hit = self.store.cached(key)
            blobs = self.store.stores.artifacts.blobs
            if hit is not None and all(blobs.exists(r["sha256"]) for r in hit[0]):
                return self._reuse(node, key, inputs, params, *hit)
        tracked = self.tracking.create_run(
            self.experiment_id,
            run_name=node.name,
            tags=self._tags(node, False),
            params={k: _text(v) for k, v in params.items()},
        ).info.run_id
        started = now_ms()
        self.store.put_step(
            self.run_uuid,
            node.name,
            status="RUNNING",
            cache_key=key,
            tracking_run_id=tracked,
            started_at=started,
            error=None,
            cached_from=None,
        )
        self.say(f"{node.name}: running", node.name, "RUNNING")
        context = StepContext(
            node.name,
            key,
            self.config.db_url,
            self.config.artifacts_url,
            str(self.config.home),
            self.store.project_id,
        )
        task = StepTask(step, node.name, inputs, params, context)
        holder = f"{socket.gethostname()}:{os.getpid()}:{self.run_uuid}:{node.name}"
        attempts, outcome, error = 0, None, None
        # A slot is held per attempt, not across the backoff: a step waiting to retry
        # leaves its project's slot to the steps that can run meanwhile.
        for attempts in range(1, step.retries + 2):
            try:
                with step_slot(self.store.stores, self.store.project_id, holder, self.limit):
                    future = self.executor.submit(
                        task_callable(task), resources=step.resources, timeout_s=step.timeout_s
                    )
                    outcome = future.result()
                break
            except Exception as exc:  # noqa: BLE001 - the step's own error, retried
                error = exc
                self.store.put_step(
                    self.run_uuid, node.name, attempts=attempts, error=_describe(exc)
                )
                if isinstance(exc, Invalid) or attempts > step.retries:
                    break
                pause = step.backoff_s * 2 ** (attempts - 1)
                self.say(
                    f"{node.name}: attempt {attempts} failed ({_describe(exc)}); "
                    f"retrying in {pause:g}s",
                    node.name,
                    "RETRYING",
                )
                _backoff_sleep(pause)
        if outcome is None:
            assert error is not None
            return self._fail(node, tracked, attempts, error)
        outs = list(outcome.value)
        self.store.finish_step(
            self.run_uuid,
            node.name,
            self._edges(tracked, inputs, outs),
            key if step.cache else None,
            status="FINISHED",
            outputs=canonical_json(outs),
            attempts=attempts,
            error=None,
            finished_at=now_ms(),
            wall_s=outcome.wall_s,
            cpu_s=outcome.cpu_s,
            peak_rss_bytes=outcome.peak_rss_bytes,
        )
        self._metrics(tracked, outcome.wall_s, outcome.cpu_s, outcome.peak_rss_bytes)
        self.tracking.set_terminated(tracked, "FINISHED")
        self.say(
            f"{node.name}: finished in {outcome.wall_s:.3f}s on {outcome.where}",
            node.name,
            "FINISHED",
        )
        return outs

    def _metrics(self, rid: str, wall: float, cpu: float, peak: int) -> None:
        from loopstack.tracking import Metric

        at = now_ms()
        self.tracking.log_batch(
            rid,
            metrics=[
                Metric("wall_time_s", float(wall), 0, at),
                Metric("cpu_time_s", float(cpu), 0, at),
                Metric("peak_memory_mb", peak / (1024 * 1024), 0, at),
            ],
        )

    def _reuse(
        self,
        node: Node,
        key: str,
        inputs: Mapping[str, dict[str, Any]],
        params: dict[str, Any],
        outs: list[dict[str, Any]],
        source: str,
    ):
        tracked = self.tracking.create_run(
            self.experiment_id,
            run_name=node.name,
            tags=self._tags(node, True),
            params={k: _text(v) for k, v in params.items()},
        ).info.run_id
        at = now_ms()
        self.store.finish_step(
            self.run_uuid,
            node.name,
            self._edges(tracked, inputs, outs),
            None,
            status="CACHED",
            cache_key=key,
            tracking_run_id=tracked,
            outputs=canonical_json(outs),
            attempts=0,
            error=None,
            cached_from=source,
            started_at=at,
            finished_at=at,
            wall_s=0.0,
            cpu_s=0.0,
            peak_rss_bytes=0,
        )
        self._metrics(tracked, 0.0, 0.0, 0)
        self.tracking.set_terminated(tracked, "FINISHED")
        self.say(
            f"{node.name}: cached (unchanged code, inputs, params and packages); "
            f"reusing the outputs of run {source}",
            node.name,
            "CACHED",
        )
        return outs

    def _fail(self, node: Node, tracked: str, attempts: int, error: BaseException) -> Any:
        message = f"step {node.name!r} failed after {attempts} attempt(s): {_describe(error)}"
        self.store.put_step(
            self.run_uuid,
            node.name,
            status="FAILED",
            attempts=attempts,
            error=_with_traceback(error),
            finished_at=now_ms(),
        )
        self.tracking.set_terminated(tracked, "FAILED")
        self.say(message, node.name, "FAILED")
        if isinstance(error, Invalid):
            raise error
        kind = StepTimeout if isinstance(error, StepTimeout) else StepFailed
        raise kind(message) from error

    def go(self, done: Mapping[str, list[dict[str, Any]]]) -> None:
        """Run every node not in ``done``; the first failure is raised after the running
        ones finish (the nodes never started are SKIPPED)."""
        self.outputs.update(done)
        graph = self.pipe.graph
        pending = [n for n in graph.order if n not in done]
        failure: BaseException | None = None
        width = max(1, self.executor.max_parallel)
        with concurrent.futures.ThreadPoolExecutor(width, "loopstack-step") as pool:
            running: dict[concurrent.futures.Future[Any], str] = {}
            while pending or running:
                if failure is None:
                    for name in [
                        n for n in pending if all(u in self.outputs for u in graph.upstream(n))
                    ]:
                        if len(running) >= width:
                            break
                        pending.remove(name)
                        running[pool.submit(self.run_node, graph.nodes[name])] = name
                if not running:
                    break
                finished, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in finished:
                    name = running.pop(future)
                    try:
                        self.outputs[name] = future.result()
                    except BaseException as exc:  # noqa: BLE001 - raised once the rest stop
                        failure = failure or exc
        for name in pending:
            self.store.put_step(self.run_uuid, name, status="SKIPPED")
            self.say(f"{name}: skipped (an upstream step failed)", name, "SKIPPED")
        if failure is not None:
            raise failure


def _with_traceback(exc: BaseException, limit: int = 8000) -> str:
    """The error and where it was raised: the remote traceback an executor attached as a
    note, else this process's."""
    notes = [n for n in getattr(exc, "__notes__", []) if isinstance(n, str)]
    where = "\n".join(notes) if notes else "".join(traceback.format_exception(exc))
    text = f"{_describe(exc)}\n{where}".rstrip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_pipeline(
    pipe: Pipeline,
    params: Mapping[str, Any],
    *,
    executor: str = "local",
    address: str | None = None,
    max_workers: int | None = None,
    resume: str | None = None,
    on_event: StepEvents | None = None,
) -> PipelineRun:
    """Run ``pipe`` (or, with ``resume``, the rest of that run); the finished run.

    ``on_event(step, status, message)`` hears each step start, retry, finish, come from
    the cache or fail, as it happens (the CLI's progress). A failure raises (StepFailed,
    StepTimeout, Invalid) with the run's id in its ``pipeline_run`` attribute.
    """
    from loopstack.auth import project_in_use
    from loopstack.config import settings
    from loopstack.store import open_stores
    from loopstack.tracking import TrackingClient
    from loopstack.tracking._sql_store import SqlTrackingStore

    values = pipe.bind(params)
    config = settings()
    stores = open_stores(config)
    project = project_in_use(stores.db, config)
    store = SqlPipelineStore(stores, project, actor=config.actor)
    tracking = TrackingClient(
        store=SqlTrackingStore(stores, actor=config.actor, project_id=project)
    )
    with executor_for(executor, address=address, max_workers=max_workers) as ex:
        done: dict[str, list[dict[str, Any]]] = {}
        if resume is not None:
            record = store.get_run(resume)
            run_uuid, parent = record.run_uuid, record.tracking_run_id or ""
            # reuse what finished, as long as the node still makes the same outputs
            done = {
                s: r.outputs
                for s, r in record.steps.items()
                if r.status in _DONE
                and s in pipe.graph.nodes
                and [o["name"] for o in r.outputs]
                == [ref.label for ref in output_refs(pipe.graph.nodes[s])]
            }
            store.restart_run(run_uuid, executor)
            experiment_id = tracking.get_run(parent).info.experiment_id
            tracking.store.update_run(parent, status="RUNNING", end_time=None)
        else:
            try:
                entrypoint = pipe.entrypoint()
            except LoopstackError:
                entrypoint = ""  # not importable by name: runs, but cannot be resumed
            run_uuid = uuid.uuid4().hex
            experiment_id = tracking.set_experiment(pipe.name)
            parent = tracking.create_run(
                experiment_id,
                run_name=f"{pipe.name}-{run_uuid[:8]}",
                tags={"loopstack.pipeline": pipe.name, "loopstack.pipeline_run": run_uuid},
                params={k: _text(v) for k, v in values.items()},
            ).info.run_id
            store.create_run(
                run_uuid=run_uuid,
                pipeline=pipe.name,
                entrypoint=entrypoint,
                status="RUNNING",
                params=canonical_json(values),
                graph=canonical_json(pipe.graph.to_dict()),
                executor=executor,
                tracking_run_id=parent,
                attempt=1,
            )
            for name in pipe.graph.order:
                store.put_step(run_uuid, name, status="PENDING")
        state = _Run(pipe, values, store, ex, tracking, run_uuid, experiment_id, parent, on_event)
        for name in done:
            state.say(f"{name}: reused from the earlier attempt of run {run_uuid}", name, "REUSED")
        try:
            state.go(done)
        except BaseException as exc:
            store.finish_run(run_uuid, "FAILED", _describe(exc))
            tracking.set_terminated(parent, "FAILED")
            if isinstance(exc, LoopstackError):
                exc.pipeline_run = run_uuid  # type: ignore[attr-defined]
            raise
    store.finish_run(run_uuid, "FINISHED")
    tracking.set_terminated(parent, "FINISHED")
    return PipelineRun(store.get_run(run_uuid), stores, state.messages)
