"""A project's step slots: N leases ``steps:<project_id>:<i>``, one held per running step.

The limit is ``LOOPSTACK_PIPELINE_MAX_CONCURRENT_STEPS`` (default 4) and holds across
every process that shares the database; a holder renews its lease while the step runs,
and a holder that died frees its slot when the lease expires.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopstack.store import Stores

__all__ = ["LEASE_TTL_S", "step_slot"]

#: how long a slot's lease lasts unrenewed (renewed every third of it)
LEASE_TTL_S = 30.0


@contextlib.contextmanager
def step_slot(stores: Stores, project_id: int, holder: str, limit: int) -> Iterator[str]:
    """Hold one of the project's ``limit`` step slots (a lease, renewed) while inside."""
    from loopstack.store.metadata import acquire_lease, release_lease

    db, got, delay = stores.db, None, 0.02
    waiting = threading.Event()  # never set: a sleep that retry tests' patched sleep leaves be
    while got is None:
        for i in range(limit):
            name = f"steps:{project_id}:{i}"
            if acquire_lease(db, name, holder, LEASE_TTL_S) is not None:
                got = name
                break
        else:
            waiting.wait(delay)
            delay = min(delay * 2, 0.5)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_TTL_S / 3):
            acquire_lease(db, got, holder, LEASE_TTL_S)

    renewer = threading.Thread(target=renew, name=f"lease {got}", daemon=True)
    renewer.start()
    try:
        yield got
    finally:
        stop.set()
        renewer.join()
        release_lease(db, got, holder)
