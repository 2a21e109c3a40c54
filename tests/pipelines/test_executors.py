"""The local and process executors: results, errors, timeouts, dead children, limits,
measurements, and forked children that open the metadata store on their own."""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loopstack.errors import Invalid, StepFailed, StepTimeout
from loopstack.pipelines._executors import (
    LocalExecutor,
    Outcome,
    ProcessExecutor,
    Resources,
    executor_for,
)
from loopstack.store.metadata import acquire_lease, lease_holder, open_database

MB = 1024 * 1024


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.01)
    raise AssertionError("the child never wrote its pid")


def _write_pid_then_sleep(path: Path) -> None:
    path.write_text(str(os.getpid()))
    time.sleep(600)


class OddError(Exception):
    """An exception that pickles but cannot be rebuilt from its args."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"odd {a} {b}")


def _square_and_pid(i: int) -> tuple[int, int]:
    return i * i, os.getpid()


def _die_by(sig: signal.Signals) -> None:
    faulthandler.disable()  # pytest's handler would print the child's stacks first
    os.kill(os.getpid(), sig)


def _burn(seconds: float) -> int:
    end, n = time.thread_time() + seconds, 0
    while time.thread_time() < end:
        n += 1
    return n


# -- resources and names -----------------------------------------------------------


def test_resources_of_mappings_and_bad_values() -> None:
    assert Resources.of(None) == Resources()
    assert Resources.of({"num_cpus": 2, "memory_mb": 512}) == Resources(2.0, 0.0, 512)
    same = Resources(num_gpus=0.5)
    assert Resources.of(same) is same
    with pytest.raises(Invalid, match=r"unknown keys \['cpus'\]"):
        Resources.of({"cpus": 2})
    with pytest.raises(Invalid, match="'num_cpus' must be a number >= 0; got -1"):
        Resources.of({"num_cpus": -1})
    with pytest.raises(Invalid, match="'memory_mb' must be a whole number"):
        Resources(memory_mb=0)
    with pytest.raises(Invalid, match="must be a Resources, a mapping or None"):
        Resources.of(4)  # type: ignore[arg-type]


def test_unknown_executor_names_the_valid_ones() -> None:
    with pytest.raises(Invalid, match=r"one of \['local', 'process', 'ray'\]; got 'dask'"):
        executor_for("dask")
    with pytest.raises(Invalid, match="'max_workers'"):
        executor_for("process", max_workers=0)
    with pytest.raises(Invalid, match="'timeout_s'"):
        executor_for("local").submit(lambda: 1, timeout_s=0)


def test_the_ray_executor_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(Invalid, match=r'pip install "loopstack\[ray\]"'):
        executor_for("ray")


# -- local -------------------------------------------------------------------------


def test_local_runs_in_the_calling_thread_and_is_done_at_once() -> None:
    ran_in: list[int] = []

    def step() -> int:
        ran_in.append(threading.get_ident())
        return 7

    with executor_for("local") as ex:
        assert ex.name == "local" and ex.max_parallel == 1
        future = ex.submit(step)
        assert future.done()
        outcome = future.result()
    assert isinstance(outcome, Outcome) and outcome.value == 7
    assert ran_in == [threading.get_ident()]
    assert outcome.where.endswith(f":{os.getpid()}")


def test_local_passes_the_exception_through() -> None:
    def fail() -> None:
        raise KeyError("missing")

    future = LocalExecutor().submit(fail)
    with pytest.raises(KeyError, match="missing"):
        future.result()


def test_local_with_a_timeout_runs_in_a_child_that_is_killed(tmp_path: Path) -> None:
    outcome = LocalExecutor().submit(lambda: os.getpid(), timeout_s=30).result()
    assert outcome.value != os.getpid() and outcome.where.endswith(f":{outcome.value}")
    pidfile = tmp_path / "pid"
    future = LocalExecutor().submit(lambda: _write_pid_then_sleep(pidfile), timeout_s=1)
    assert future.done()
    with pytest.raises(StepTimeout, match="timeout of 1s"):
        future.result()
    assert _gone(int(pidfile.read_text()))


# -- process -----------------------------------------------------------------------


def test_process_returns_values_from_another_process() -> None:
    with executor_for("process", max_workers=2) as ex:
        assert ex.name == "process" and ex.max_parallel == 2
        futures = [ex.submit(functools.partial(_square_and_pid, i)) for i in range(4)]
        results = [f.result(timeout=60).value for f in futures]
    assert [square for square, _ in results] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid in results)
    assert ProcessExecutor().max_parallel == (os.cpu_count() or 1)


def test_process_exception_keeps_its_type_with_the_child_traceback() -> None:
    def train_step() -> None:
        raise ValueError("learning rate must be positive")

    with executor_for("process") as ex:
        future = ex.submit(train_step)
        with pytest.raises(ValueError, match="learning rate must be positive") as info:
            future.result(timeout=60)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raised in the step's process" in notes
    assert "in train_step" in notes and "Traceback" in notes


def test_process_unpicklable_errors_and_results_become_step_failed() -> None:
    class Local(Exception):  # defined in a function: cannot be pickled by reference
        pass

    def raise_local() -> None:
        raise Local("nope")

    def raise_odd() -> None:
        raise OddError(1, 2)

    with executor_for("process") as ex:
        with pytest.raises(StepFailed, match=r"raised .*Local\('nope'\).*cannot be pickled"):
            ex.submit(raise_local).result(timeout=60)
        with pytest.raises(StepFailed, match=r"raised OddError\('odd 1 2'\).*cannot be pickled"):
            ex.submit(raise_odd).result(timeout=60)
        with pytest.raises(StepFailed, match="returned <function.*cannot be pickled back"):
            ex.submit(lambda: lambda: 1).result(timeout=60)


def test_process_timeout_kills_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with executor_for("process") as ex:
        # 5 s: time for the fork and the pid's write on a loaded machine
        future = ex.submit(lambda: _write_pid_then_sleep(pidfile), timeout_s=5)
        with pytest.raises(StepTimeout, match="ran past its timeout of 5s"):
            future.result(timeout=60)
    assert _gone(int(pidfile.read_text()))


def test_a_child_killed_by_a_signal_or_exiting_is_step_failed() -> None:
    with executor_for("process") as ex:
        killed = ex.submit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        with pytest.raises(StepFailed, match=r"killed by SIGKILL \(out of memory\?\)"):
            killed.result(timeout=60)
        segv = ex.submit(functools.partial(_die_by, signal.SIGSEGV))
        with pytest.raises(StepFailed, match="killed by SIGSEGV"):
            segv.result(timeout=60)
        exited = ex.submit(lambda: os._exit(3))
        with pytest.raises(StepFailed, match="exited with code 3 before it returned"):
            exited.result(timeout=60)


def test_a_step_may_run_steps_in_processes_of_its_own() -> None:
    def outer() -> tuple[int, int]:
        with executor_for("process", max_workers=1) as inner:
            return os.getpid(), inner.submit(os.getpid, timeout_s=30).result(timeout=60).value

    with executor_for("process") as ex:
        outer_pid, inner_pid = ex.submit(outer, timeout_s=60).result(timeout=90).value
    assert len({os.getpid(), outer_pid, inner_pid}) == 3


def test_max_workers_bounds_the_children_running_at_once() -> None:
    def span() -> tuple[float, float]:
        start = time.time()
        time.sleep(0.3)
        return start, time.time()

    with executor_for("process", max_workers=2) as ex:
        spans = [f.result(timeout=60).value for f in [ex.submit(span) for _ in range(5)]]
    for start, _ in spans:  # at every start, how many runs (itself included) were under way
        assert sum(1 for s, e in spans if s <= start < e) <= 2


def test_max_workers_children_do_run_side_by_side() -> None:
    barrier = multiprocessing.get_context("fork").Barrier(2, timeout=60)

    def meet() -> int:
        return barrier.wait()  # only returns once two children wait at once

    with executor_for("process", max_workers=2) as ex:
        turns = sorted(f.result(timeout=90).value for f in [ex.submit(meet), ex.submit(meet)])
    assert turns == [0, 1]


def test_close_kills_running_children_and_cancels_waiting_steps(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    ex = executor_for("process", max_workers=1)
    running = ex.submit(lambda: _write_pid_then_sleep(pidfile))
    waiting = ex.submit(lambda: 1)
    pid = _wait_for_pid(pidfile)
    ex.close()
    with pytest.raises(StepFailed, match="closed while the step ran"):
        running.result(timeout=60)
    assert waiting.cancelled()
    assert _gone(pid)
    with pytest.raises(Invalid, match="closed"):
        ex.submit(lambda: 1)


def test_submit_is_thread_safe() -> None:
    with executor_for("process", max_workers=2) as ex:
        futures: list[Any] = []
        lock = threading.Lock()

        def submit_some(base: int) -> None:
            for i in range(3):
                future = ex.submit(functools.partial(int, base + i))
                with lock:
                    futures.append(future)

        threads = [threading.Thread(target=submit_some, args=(10 * t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        values = sorted(f.result(timeout=120).value for f in futures)
    assert values == sorted(10 * t + i for t in range(4) for i in range(3))


# -- measurements ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local", "process"])
def test_peak_memory_counts_an_allocation(name: str) -> None:
    def allocate() -> int:
        block = b"\x01" * (200 * MB)  # touched: resident, not only reserved
        return len(block)

    with executor_for(name) as ex:
        idle = ex.submit(lambda: 0).result(timeout=60)
        outcome = ex.submit(allocate).result(timeout=60)
    assert outcome.value == 200 * MB
    assert outcome.peak_rss_bytes > 200 * MB
    # the block itself, not only what the process held before the step
    assert outcome.peak_rss_bytes - idle.peak_rss_bytes > 190 * MB


@pytest.mark.parametrize("name", ["local", "process"])
def test_cpu_time_follows_work_not_waiting(name: str) -> None:
    with executor_for(name) as ex:
        burnt = ex.submit(lambda: _burn(0.5)).result(timeout=60)
        slept = ex.submit(lambda: time.sleep(0.5)).result(timeout=60)
    assert 0.45 <= burnt.cpu_s <= burnt.wall_s + 0.05  # CPU-bound: CPU time is the wall time
    assert slept.wall_s >= 0.5 and slept.cpu_s < 0.2  # asleep: hardly any CPU
    assert burnt.peak_rss_bytes > 0 and slept.where


# -- forked children and the metadata store -----------------------------------------


def test_a_forked_child_writes_through_its_own_connection(db_url: str) -> None:
    db = open_database(db_url)
    assert acquire_lease(db, "parent", "p", ttl_s=60) is not None  # the pool has a connection
    parent_pool = db.engine.pool
    # a parent thread holds the write gate while the child is forked: the child's write
    # must not wait for a release that can never come in its process
    held, release = threading.Event(), threading.Event()

    def hold_the_gate() -> None:
        db._gate.acquire(timeout=10)
        held.set()
        release.wait(60)
        db._gate.release()

    holder = threading.Thread(target=hold_the_gate)
    holder.start()
    held.wait(10)
    db.write_wait_s = 5.0

    def in_child() -> tuple[bool, str | None]:
        child_db = open_database(db_url)
        lease = acquire_lease(child_db, "from-child", f"child-{os.getpid()}", ttl_s=60)
        return child_db.engine.pool is parent_pool, lease.holder if lease else None

    try:
        with executor_for("process") as ex:
            same_pool, holder_name = ex.submit(in_child, timeout_s=60).result(timeout=90).value
    finally:
        release.set()
        holder.join()
        db.write_wait_s = 30.0
    assert not same_pool
    assert holder_name is not None and holder_name.startswith("child-")
    seen = lease_holder(db, "from-child")
    assert seen is not None and seen.holder == holder_name
    # the parent's own connections still work after the child exited
    assert acquire_lease(db, "parent-again", "p", ttl_s=60) is not None
    assert db.engine.pool is parent_pool


def _answer() -> int:
    return 42


def test_a_step_process_forked_after_the_feature_stores_duckdb_survives() -> None:
    """The feature store keeps a DuckDB database per thread; a child forked from the
    executor's thread used to free the main thread's one, and crash (SIGSEGV)."""
    from loopstack.features._sources import duckdb_connect

    duckdb_connect().close()  # this thread's database now exists
    with executor_for("process", max_workers=1) as ex:
        assert ex.submit(_answer).result(timeout=60).value == 42
