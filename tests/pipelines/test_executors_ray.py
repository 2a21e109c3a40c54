"""The Ray executor on a local 2-CPU Ray instance this module starts and stops.

CI installs Ray (``pip install ".[ray]"``): there, a missing Ray fails these tests
rather than skipping them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopstack.errors import Invalid, StepFailed, StepTimeout
from loopstack.pipelines._executors import Executor, Resources, executor_for

pytestmark = pytest.mark.slow

MB = 1024 * 1024


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail('Ray is not installed; CI must install it (pip install ".[ray]")')
        pytest.skip('Ray is not installed (pip install ".[ray]")')
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ex(ray_instance: Any) -> Iterator[Executor]:
    with executor_for("ray") as executor:
        yield executor


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def test_results_come_back_from_a_worker(ex: Executor) -> None:
    assert ex.name == "ray" and ex.max_parallel == 2
    outcome = ex.submit(lambda: (6 * 7, os.getpid())).result(timeout=120)
    value, pid = outcome.value
    assert value == 42 and pid != os.getpid()
    assert outcome.where.endswith(f":{pid}")
    assert outcome.wall_s >= 0 and outcome.cpu_s >= 0


def test_peak_memory_is_measured_in_the_worker(ex: Executor) -> None:
    def allocate() -> int:
        return len(b"\x01" * (200 * MB))

    idle = ex.submit(lambda: 0).result(timeout=120)
    outcome = ex.submit(allocate).result(timeout=120)
    assert outcome.value == 200 * MB and outcome.peak_rss_bytes > 200 * MB
    assert outcome.peak_rss_bytes - idle.peak_rss_bytes > 190 * MB


def test_a_two_cpu_task_never_overlaps_another(ex: Executor) -> None:
    def span() -> tuple[float, float]:
        start = time.time()
        time.sleep(1.0)
        return start, time.time()

    wide = ex.submit(span, resources=Resources(num_cpus=2))
    narrow = ex.submit(span, resources=Resources(num_cpus=1))
    (a0, a1), (b0, b1) = wide.result(timeout=120).value, narrow.result(timeout=120).value
    assert a1 <= b0 or b1 <= a0  # one ran after the other


def test_a_request_the_local_instance_cannot_meet_is_refused(ex: Executor) -> None:
    with pytest.raises(Invalid, match=r"more than the local Ray instance has \(2 CPUs"):
        ex.submit(lambda: 1, resources=Resources(num_cpus=3))


def test_a_timeout_counts_from_the_start_not_the_queue(ex: Executor, tmp_path: Path) -> None:
    def hold() -> str:
        (tmp_path / "holding").touch()
        time.sleep(4)
        return "held"

    blocker = ex.submit(hold, resources=Resources(num_cpus=2))
    _wait_for(tmp_path / "holding")
    # queued behind the blocker for ~4 s, then done in no time: well inside 3 s of running
    queued = ex.submit(lambda: "ran", resources=Resources(num_cpus=2), timeout_s=3)
    assert blocker.result(timeout=120).value == "held"
    assert queued.result(timeout=120).value == "ran"


def test_two_one_cpu_tasks_run_side_by_side(ex: Executor, tmp_path: Path) -> None:
    def meet(me: str, other: str) -> str:
        (tmp_path / me).touch()
        _wait_for(tmp_path / other)  # only returns if the other task runs at the same time
        return me

    first = ex.submit(lambda: meet("a", "b"), resources={"num_cpus": 1})  # type: ignore[arg-type]
    second = ex.submit(lambda: meet("b", "a"), resources=Resources(num_cpus=1))
    assert {first.result(timeout=120).value, second.result(timeout=120).value} == {"a", "b"}


def test_exceptions_keep_their_type_with_the_remote_traceback(ex: Executor) -> None:
    def train_step() -> None:
        raise ValueError("learning rate must be positive")

    with pytest.raises(ValueError, match="learning rate must be positive") as info:
        ex.submit(train_step).result(timeout=120)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "in train_step" in notes and "Traceback" in notes

    class Local(Exception):
        pass

    def raise_local() -> None:
        raise Local("nope")

    with pytest.raises(StepFailed, match=r"Local\('nope'\).*cannot be pickled"):
        ex.submit(raise_local).result(timeout=120)


def test_a_timeout_cancels_the_task_and_kills_its_worker(ex: Executor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    def hang() -> None:
        pidfile.write_text(str(os.getpid()))
        time.sleep(600)

    with pytest.raises(StepTimeout, match="ran past its timeout of 10s"):
        ex.submit(hang, timeout_s=10).result(timeout=120)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the worker {pid} still runs after its task timed out")
    assert ex.submit(lambda: "still usable").result(timeout=120).value == "still usable"


def test_close_cancels_the_tasks_still_running(ray_instance: Any, tmp_path: Path) -> None:
    def hang() -> None:
        (tmp_path / "running").touch()
        time.sleep(600)

    ex = executor_for("ray")
    future = ex.submit(hang)
    _wait_for(tmp_path / "running")
    ex.close()
    with pytest.raises(StepFailed, match="closed while the step ran"):
        future.result(timeout=120)
    with pytest.raises(Invalid, match="closed"):
        ex.submit(lambda: 1)


def test_a_worker_that_dies_is_step_failed(ex: Executor) -> None:
    with pytest.raises(StepFailed, match="Ray worker died"):
        ex.submit(lambda: os.kill(os.getpid(), signal.SIGKILL)).result(timeout=120)


def test_loopstack_environment_reaches_the_worker(
    ex: Executor, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_PIPELINE_PROBE", "from-the-driver")
    monkeypatch.setenv("NOT_LOOPSTACK_PROBE", "kept-out")

    def read_env() -> tuple[str | None, str | None, str | None, str]:
        import loopstack

        return (
            os.environ.get("LOOPSTACK_PIPELINE_PROBE"),
            os.environ.get("LOOPSTACK_HOME"),
            os.environ.get("NOT_LOOPSTACK_PROBE"),
            loopstack.__file__,
        )

    probe, home, other, module = ex.submit(read_env).result(timeout=120).value
    assert probe == "from-the-driver" and home == str(ls_home) and other is None
    import loopstack

    assert module == loopstack.__file__  # the worker imports the same code


PARITY_FLOW = """
import numpy as np
import pandas as pd

import loopstack as ls


@ls.step(cache=False)
def make(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.normal(size=rows), "g": rng.integers(0, 3, rows)})


@ls.step(cache=False, resources={"num_cpus": 1})
def totals(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("g", as_index=False)["x"].sum()


@ls.step(cache=False)
def weights(frame: pd.DataFrame) -> np.ndarray:
    return np.linalg.lstsq(np.c_[frame["g"], np.ones(len(frame))], frame["x"], rcond=None)[0]


@ls.step(cache=False)
def summary(sums: pd.DataFrame, coef: np.ndarray) -> dict[str, float]:
    return {"total": float(sums["x"].sum()), "slope": float(coef[0])}


@ls.pipeline(name="parity")
def flow(rows: int = 500):
    frame = make(rows=rows)
    summary(totals(frame), weights(frame))
"""


def test_the_same_pipeline_makes_the_same_bytes_on_every_executor(
    ray_instance: Any, tmp_path: Path, use_db: str
) -> None:
    """The issue's promise: one pipeline's code on local, process and Ray, byte-identical
    artifacts where the steps are deterministic (every step runs: no cache)."""
    from loopstack.pipelines import load_entrypoint

    (tmp_path / "parity_flow.py").write_text(PARITY_FLOW)
    pipe = load_entrypoint(f"{tmp_path / 'parity_flow.py'}:flow")
    digests = {}
    for executor in ("local", "process", "ray"):
        run = pipe.run(executor=executor, rows=800)
        assert run.status == "FINISHED"
        assert {s.status for s in run.steps.values()} == {"FINISHED"}
        digests[executor] = {
            name: [o["sha256"] for o in s.outputs] for name, s in sorted(run.steps.items())
        }
    assert digests["local"] == digests["process"] == digests["ray"]
    assert run.output("summary")["total"] == pytest.approx(
        float(pipe.run(rows=800).output("totals")["x"].sum())
    )
