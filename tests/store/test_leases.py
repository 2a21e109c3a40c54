"""Named leases: one holder at a time, taken over only once expired, on every SQL backend."""

from __future__ import annotations

import threading

import pytest

from loopstack.errors import Invalid
from loopstack.store.metadata import acquire_lease, lease_holder, open_database, release_lease


def test_one_holder_until_the_lease_expires(db_url: str) -> None:
    db = open_database(db_url)
    first = acquire_lease(db, "ctl", "a", ttl_s=10, now=100.0)
    assert first is not None and first.holder == "a" and first.expires_at == 110.0
    assert acquire_lease(db, "ctl", "b", ttl_s=10, now=105.0) is None
    renewed = acquire_lease(db, "ctl", "a", ttl_s=10, now=108.0)
    assert renewed is not None and renewed.acquired_at == 100.0 and renewed.expires_at == 118.0
    assert lease_holder(db, "ctl", now=117.0).holder == "a"  # type: ignore[union-attr]
    assert lease_holder(db, "ctl", now=118.0) is None  # expired: nobody holds it
    taken = acquire_lease(db, "ctl", "b", ttl_s=10, now=118.0)
    assert taken is not None and taken.holder == "b" and taken.acquired_at == 118.0
    assert not release_lease(db, "ctl", "a")  # not a's any more
    assert release_lease(db, "ctl", "b")
    assert acquire_lease(db, "ctl", "a", ttl_s=10, now=119.0) is not None


def test_racing_holders_elect_exactly_one(db_url: str) -> None:
    db = open_database(db_url)
    start, won = threading.Barrier(8), []

    def race(holder: str) -> None:
        start.wait()
        if acquire_lease(db, "race", holder, ttl_s=30) is not None:
            won.append(holder)

    threads = [threading.Thread(target=race, args=(f"h{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert lease_holder(db, "race").holder == won[0]  # type: ignore[union-attr]


def test_bad_arguments_are_refused(db_url: str) -> None:
    db = open_database(db_url)
    with pytest.raises(Invalid, match="ttl_s"):
        acquire_lease(db, "x", "a", ttl_s=0)
    with pytest.raises(Invalid, match="name and a holder"):
        acquire_lease(db, "", "a", ttl_s=1)
    assert lease_holder(db, "x") is None
