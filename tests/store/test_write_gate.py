"""Writers of one process take turns at the write lock: first come first served, a
bounded wait, a bounded queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.store.metadata import Database
from loopstack.store.metadata._write_gate import WriteGate


def _wait_until(cond: object) -> None:
    while not cond():  # type: ignore[operator]
        threading.Event().wait(0.005)


def test_writers_get_the_gate_in_the_order_they_asked() -> None:
    gate = WriteGate()
    assert gate.acquire(timeout=1)
    order: list[int] = []

    def writer(i: int) -> None:
        assert gate.acquire(timeout=60)
        order.append(i)
        gate.release()

    threads = []
    for i in range(6):
        t = threading.Thread(target=writer, args=(i,))
        t.start()
        threads.append(t)
        _wait_until(lambda i=i: gate.waiting == i + 1)  # queued in this order
    gate.release()
    for t in threads:
        t.join(timeout=30)
    assert order == list(range(6))
    assert gate.acquire(timeout=0)  # open again


def test_a_wait_that_runs_out_leaves_the_queue() -> None:
    gate = WriteGate()
    assert gate.acquire(timeout=1)
    assert not gate.acquire(timeout=0.05)
    assert gate.waiting == 0
    gate.release()
    assert gate.acquire(timeout=0)


def test_a_full_queue_refuses_at_once() -> None:
    gate = WriteGate(max_waiting=1)
    assert gate.acquire(timeout=1)
    waiter = threading.Thread(target=lambda: gate.acquire(timeout=60) and gate.release())
    waiter.start()
    _wait_until(lambda: gate.waiting == 1)
    assert not gate.acquire(timeout=60)  # refused without waiting its 60 s
    gate.release()
    waiter.join(timeout=30)
    assert gate.waiting == 0


def test_a_bounded_write_under_a_held_lock_is_overloaded_without_the_path(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "held.db"
    db = Database(f"sqlite:///{path}")
    db.bound_writers(wait_s=0.3, max_waiting=4)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(ls.Overloaded) as info:
            db.write(lambda c: None, actor="t", action="noop", object_type="t", object_id="1")
        assert info.value.status_code == 503
        assert str(path) not in info.value.message and "held.db" not in info.value.message
        assert db.read(lambda c: 1) == 1  # reads go on under the held write lock
    finally:
        holder.rollback()
        holder.close()
    db.write(lambda c: None, actor="t", action="noop", object_type="t", object_id="1")
    db.dispose()


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf"])
def test_a_bad_write_wait_is_refused_by_name(
    raw: str, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.config import settings

    monkeypatch.setenv("LOOPSTACK_WRITE_WAIT_S", raw)
    with pytest.raises(ls.Invalid, match="LOOPSTACK_WRITE_WAIT_S must be a positive number"):
        settings()
