"""The runner against the executor contract: tasks pickle, steps run at once, timeouts."""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import loopstack as ls
from loopstack.errors import StepTimeout
from loopstack.pipelines import _runner
from loopstack.pipelines._executors import Executor, Outcome, Resources
from tests.pipelines import flows

T = TypeVar("T")


class PicklingThreads(Executor):
    """Runs each call in a thread from its pickled bytes, as a forked or Ray worker gets it."""

    name = "threads"

    def __init__(self, width: int = 2, *, timeout: bool = False) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(width)
        self.width = width
        self.timeout = timeout
        self.resources: list[Resources] = []

    @property
    def max_parallel(self) -> int:
        return self.width

    def submit(
        self,
        fn: Callable[[], T],
        *,
        resources: Resources = Resources(),
        timeout_s: float | None = None,
    ) -> concurrent.futures.Future[Outcome[T]]:
        self.resources.append(resources)
        blob = pickle.dumps(fn)

        def call() -> Outcome[T]:
            if self.timeout:
                raise StepTimeout(f"ran past its timeout of {timeout_s}s")
            started = time.perf_counter()
            value = pickle.loads(blob)()
            return Outcome(value, time.perf_counter() - started, 0.0, 1, f"thread:{os.getpid()}")

        return self.pool.submit(call)

    def close(self) -> None:
        self.pool.shutdown()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> PicklingThreads:
    executor = PicklingThreads()
    monkeypatch.setattr(_runner, "executor_for", lambda name, **kw: executor)
    return executor


def test_independent_steps_run_at_once_up_to_max_parallel(
    use_db: str, threads: PicklingThreads
) -> None:
    run = flows.meeting.run(executor="threads")
    assert run.output("meet") == "left" and run.output("meet_2") == "right"
    assert {s.status for s in run.steps.values()} == {"FINISHED"}
    assert all(s.peak_rss_bytes == 1 for s in run.steps.values())  # measured by the executor


def test_a_whole_pipeline_runs_through_pickled_tasks(use_db: str, threads: PicklingThreads) -> None:
    run = flows.training.run(rows=20, executor="threads")
    assert run.output("evaluate") == {"mae": 0.0, "rows": 4.0}
    assert ls.pipelines.get_run(run.run_uuid).record.executor == "threads"
    assert threads.resources and all(r == Resources() for r in threads.resources)


def test_a_step_timeout_raises_step_timeout_after_its_retries(
    use_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    executor = PicklingThreads(timeout=True)
    monkeypatch.setattr(_runner, "executor_for", lambda name, **kw: executor)
    monkeypatch.setattr(_runner, "_backoff_sleep", lambda s: None)
    with pytest.raises(StepTimeout, match=r"'flaky' failed after 3 attempt\(s\).*timeout"):
        flows.flaky_flow.run(path=str(tmp_path / "count"), executor="threads")


def test_a_step_of_a_script_unpickles_in_another_process(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(
        "import loopstack as ls\n\n@ls.step\ndef twice(x: int) -> int:\n    return 2 * x\n"
    )
    module = ls.pipelines._steps.module_from_file(script)
    blob = pickle.dumps(module.twice)
    src = str(Path(__file__).resolve().parents[2] / "src")
    code = "import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); print(s.name, s(21))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=blob,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": src},
        check=True,
        timeout=60,
    )
    assert out.stdout.decode().split() == ["twice", "42"]


def test_the_public_names_are_sorted_and_resolve() -> None:
    assert ls.pipelines.__all__ == sorted(ls.pipelines.__all__)
    for name in ls.pipelines.__all__:
        assert getattr(ls.pipelines, name) is not None
    assert ls.step is ls.pipelines.step and ls.pipeline is ls.pipelines.pipeline
    assert ls.checkpoint is ls.pipelines.checkpoint
