"""The async inference queue's contract, over the metadata database (SQLite,
PostgreSQL) and Redis: claims, leases, retries, poison jobs, TTLs, idempotency, and
workers SIGKILLed mid-job with every job still completed exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread

import pytest

from loopstack.errors import Invalid, NotFound
from loopstack.serving.jobs import JobQueue, open_queue
from loopstack.store.metadata import Database

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


@dataclass
class Backend:
    queue: JobQueue
    where: str  # what a worker process opens
    prefix: str


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "redis"])
def backend(request: pytest.FixtureRequest, ls_home: Path) -> Iterator[Backend]:
    prefix = f"lstest:{uuid.uuid4().hex[:10]}:"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        queue = open_queue(url, prefix=prefix, result_ttl_s=60)
        yield Backend(queue, url, prefix)
        import redis

        r = redis.Redis.from_url(url)
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)
        return
    url = (
        f"sqlite:///{ls_home / 'jobs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    yield Backend(open_queue("sql", db=db, result_ttl_s=60), f"sql:{url}", prefix)
    db.dispose()


def test_a_job_goes_queued_running_succeeded_and_expires_after_its_ttl(
    backend: Backend,
) -> None:
    q = backend.queue
    job = q.enqueue("churn", {"records": [{"a": 1}]}, now=T0)
    assert (job.status, job.tries, job.payload) == ("queued", 0, {"records": [{"a": 1}]})
    assert q.get(job.job_id).status == "queued"
    held = q.claim("w1", 30, now=T0 + 1)
    assert held is not None and held.job_id == job.job_id
    assert (held.status, held.tries, held.holder, held.started_at) == ("running", 1, "w1", T0 + 1)
    assert q.claim("w2", 30, now=T0 + 2) is None  # held, lease not lapsed
    assert q.heartbeat(job.job_id, "w1", 30, now=T0 + 20)
    assert not q.heartbeat(job.job_id, "w2", 30, now=T0 + 20)
    assert q.claim("w2", 30, now=T0 + 40) is None  # renewed until T0 + 50
    assert q.complete(job.job_id, "w1", {"predictions": [1]}, now=T0 + 41)
    assert not q.complete(job.job_id, "w1", {"predictions": [2]}, now=T0 + 42)  # once
    done = q.get(job.job_id, now=T0 + 42)
    assert (done.status, done.result, done.finished_at) == (
        "succeeded",
        {"predictions": [1]},
        T0 + 41,
    )
    assert done.expires_at == T0 + 41 + 60
    assert q.expire(now=T0 + 41 + 59) == 0
    assert q.get(job.job_id, now=T0 + 100).status == "succeeded"
    with pytest.raises(NotFound):
        q.get(job.job_id, now=T0 + 102)  # past its TTL, even before expire runs
    assert q.expire(now=T0 + 41 + 61) == 1
    with pytest.raises(NotFound):
        q.get(job.job_id, now=T0 + 42)


def test_jobs_are_claimed_oldest_first_and_by_endpoint(backend: Backend) -> None:
    q = backend.queue
    a = q.enqueue("a", {"n": 1}, now=T0)
    b = q.enqueue("b", {"n": 2}, now=T0 + 1)
    c = q.enqueue("a", {"n": 3}, now=T0 + 2)
    assert q.claim("w", 30, endpoints=["b"], now=T0 + 3).job_id == b.job_id  # type: ignore[union-attr]
    assert q.claim("w", 30, now=T0 + 3).job_id == a.job_id  # type: ignore[union-attr]
    assert q.claim("w", 30, endpoints=["b"], now=T0 + 3) is None
    assert q.claim("w", 30, now=T0 + 3).job_id == c.job_id  # type: ignore[union-attr]
    assert q.claim("w", 30, now=T0 + 3) is None


def test_a_lapsed_lease_is_retried_and_the_old_holder_cannot_finish_it(
    backend: Backend,
) -> None:
    q = backend.queue
    job = q.enqueue("churn", {"x": 1}, now=T0)
    q.claim("dead", 5, now=T0)
    again = q.claim("alive", 5, now=T0 + 6)
    assert again is not None and (again.job_id, again.tries, again.holder) == (
        job.job_id,
        2,
        "alive",
    )
    assert not q.complete(job.job_id, "dead", {"late": True}, now=T0 + 7)
    assert q.fail(job.job_id, "dead", "late", now=T0 + 7) is None
    assert q.complete(job.job_id, "alive", {"ok": True}, now=T0 + 7)
    assert q.get(job.job_id, now=T0 + 8).result == {"ok": True}


def test_a_poison_job_stops_after_max_tries_with_its_last_error(backend: Backend) -> None:
    q = backend.queue
    job = q.enqueue("churn", {"x": 1}, max_tries=2, now=T0)
    q.claim("w", 5, now=T0)
    back = q.fail(job.job_id, "w", "boom 1", now=T0 + 1)
    assert back is not None and (back.status, back.error, back.tries) == ("queued", "boom 1", 1)
    q.claim("w", 5, now=T0 + 2)
    out = q.fail(job.job_id, "w", "boom 2", now=T0 + 3)
    assert out is not None and (out.status, out.error, out.tries) == ("failed", "boom 2", 2)
    assert out.finished_at == T0 + 3 and q.claim("w", 5, now=T0 + 4) is None
    # a job whose worker died on its last try fails too, saying so
    dies = q.enqueue("churn", {"x": 2}, max_tries=1, now=T0 + 5)
    q.claim("gone", 1, now=T0 + 5)
    assert q.claim("w", 5, now=T0 + 10) is None
    failed = q.get(dies.job_id, now=T0 + 10)
    assert failed.status == "failed" and "lease expired" in (failed.error or "")
    # a failure that must not be retried fails at once
    bad = q.enqueue("churn", {"x": 3}, now=T0 + 11)
    q.claim("w", 5, now=T0 + 11)
    assert q.fail(bad.job_id, "w", "bad input", retry=False, now=T0 + 12).status == "failed"  # type: ignore[union-attr]


def test_an_idempotency_key_enqueues_once_per_endpoint(backend: Backend) -> None:
    q = backend.queue
    first = q.enqueue("churn", {"x": 1}, idempotency_key="order-7", now=T0)
    again = q.enqueue("churn", {"x": 2}, idempotency_key="order-7", now=T0 + 1)
    other = q.enqueue("fraud", {"x": 1}, idempotency_key="order-7", now=T0 + 1)
    assert again.job_id == first.job_id and again.payload == {"x": 1}
    assert other.job_id != first.job_id
    assert q.enqueue("churn", {"x": 1}, now=T0).job_id != first.job_id


def test_callbacks_are_noted_without_changing_the_job(backend: Backend) -> None:
    q = backend.queue
    job = q.enqueue("churn", {"x": 1}, callback_url="http://127.0.0.1:9/cb")
    q.claim("w", 30)
    q.complete(job.job_id, "w", {"ok": 1})
    q.note_callback(job.job_id, {"status": "failed", "attempts": 3, "error": "refused"})
    got = q.get(job.job_id)
    assert got.status == "succeeded" and got.callback == {
        "status": "failed",
        "attempts": 3,
        "error": "refused",
    }
    assert got.callback_url == "http://127.0.0.1:9/cb"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"callback_url": "ftp://x"}, "callback_url"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"max_tries": 0}, "max_tries"),
    ],
)
def test_bad_jobs_are_refused_and_store_nothing(
    backend: Backend, kwargs: dict[str, object], says: str
) -> None:
    q = backend.queue
    with pytest.raises(Invalid, match=says):
        q.enqueue("churn", {"x": 1}, **kwargs)  # type: ignore[arg-type]
    assert q.claim("w", 5) is None
    with pytest.raises(Invalid, match="lease"):
        q.claim("w", 0)


def test_concurrent_claimers_never_share_a_job(backend: Backend) -> None:
    q = backend.queue
    ids = {q.enqueue("churn", {"n": i}).job_id for i in range(40)}
    got: list[str] = []

    def work(name: str) -> None:
        while (job := q.claim(name, 30)) is not None:
            got.append(job.job_id)
            assert q.complete(job.job_id, name, {"by": name})

    threads = [Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)


def _worker(b: Backend, name: str, out: Path, lease_s: float, mode: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k.startswith("LOOPSTACK_") or k == "PATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    argv = [b.where, b.prefix, name, str(out), str(lease_s), mode]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "serving" / "_job_proc.py"), *argv], env=env
    )


@pytest.mark.slow
def test_workers_sigkilled_mid_job_lose_nothing_and_every_job_completes_once(
    backend: Backend, tmp_path: Path
) -> None:
    q = backend.queue
    ids = [q.enqueue("churn", {"n": i}).job_id for i in range(60)]
    hung = tmp_path / "hung.txt"
    out = tmp_path / "done.txt"
    hangers = [_worker(backend, f"hang{i}", hung, 1.0, "hang") for i in range(2)]
    deadline = time.monotonic() + 60
    while len(hung.read_text().splitlines() if hung.exists() else []) < 2:
        assert time.monotonic() < deadline, "the hanging workers claimed nothing"
        time.sleep(0.05)
    workers = [_worker(backend, f"w{i}", out, 1.0, "work") for i in range(3)]
    for proc in hangers:  # dead mid-job: their leases lapse, others retry the jobs
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    for proc in workers:
        assert proc.wait(timeout=120) == 0
    held = {line.split()[1] for line in hung.read_text().splitlines()}
    counts = Counter(out.read_text().splitlines())
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    for job_id in ids:
        job = q.get(job_id)
        assert job.status == "succeeded"
        assert job.tries == (2 if job_id in held else 1)
