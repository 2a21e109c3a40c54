"""A job-queue worker as its own process (for the tests that SIGKILL workers).

argv: QUEUE (``sql:<db url>`` or a redis URL) PREFIX WORKER OUT LEASE_S MODE. MODE
``work`` claims and completes jobs until the queue stays empty for two seconds,
appending ``<job id>`` to OUT for each completion the queue accepted; ``hang`` claims
one job, appends ``claimed <job id>`` and sleeps until killed.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    where, prefix, worker, out, lease_s, mode = sys.argv[1:7]
    from loopstack.serving.jobs import open_queue
    from loopstack.store.metadata import open_database

    if where.startswith("sql:"):
        queue = open_queue("sql", db=open_database(where[4:]))
    else:
        queue = open_queue(where, prefix=prefix)
    lease = float(lease_s)
    if mode == "hang":
        while (job := queue.claim(worker, lease)) is None:
            time.sleep(0.05)
        with open(out, "a") as f:
            f.write(f"claimed {job.job_id}\n")
        time.sleep(3600)
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2.0:
        job = queue.claim(worker, lease)
        if job is None:
            time.sleep(0.05)
            continue
        idle_since = time.monotonic()
        time.sleep(0.01)  # the work
        if queue.complete(job.job_id, worker, {"by": worker}):
            with open(out, "a") as f:
                f.write(f"{job.job_id}\n")


if __name__ == "__main__":
    main()
