"""The audit log is hash-chained: any edit, deletion or truncation is detected and located."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from loopstack.store import audit
from loopstack.store.metadata import Database
from loopstack.tracking import TrackingClient


@pytest.fixture
def db(use_db: str) -> Database:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("audited"))
    for i in range(3):
        client.log_metric(run.run_id, "m", float(i), step=i)
    client.set_terminated(run.run_id)
    return client.store.db  # type: ignore[attr-defined,no-any-return]


def test_every_state_change_is_in_the_log(db: Database) -> None:
    actions = [e["action"] for e in audit.events(db)]
    assert actions == [
        "experiment.create",
        "run.create",
        "run.log_batch",
        "run.log_batch",
        "run.log_batch",
        "run.update",
    ]
    assert audit.verify(db).ok


def test_an_edited_row_is_named(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 3 and "edited" in (result.reason or "")


def test_a_deleted_row_is_named(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 2 and "missing" in (result.reason or "")


def test_a_truncated_tail_is_detected(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 6"))
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 6


def test_a_rehashed_forgery_is_named(db: Database) -> None:
    # An attacker who edits a row and recomputes its hash without the key is caught at
    # that row: its link is an HMAC under the audit key (tests/store/test_audit_keyed.py).
    rows = audit.events(db)
    ev = rows[1]
    forged = audit._link_hash(
        ev["prev_hash"],
        ev["seq"],
        ev["ts"],
        "mallory",
        ev["action"],
        ev["object_type"],
        ev["object_id"],
        ev["digest"],
        ev["project_id"],
    )
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET actor='mallory', hash=:h WHERE seq=2"), {"h": forged}
        )
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 2 and "under key" in (result.reason or "")


def test_an_event_moved_to_another_project_breaks_its_link(db: Database) -> None:
    # The project an event was made in is covered by its hash: hiding an event from a
    # project's audit view by moving it elsewhere is caught like any other edit.
    ev = next(e for e in audit.events(db) if e["project_id"] is not None)
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET project_id = 99 WHERE seq = :s"), {"s": ev["seq"]}
        )
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == ev["seq"]
    assert "edited" in (result.reason or "")


def test_a_projects_reader_hears_only_of_its_own_events(db: Database) -> None:
    from loopstack.auth import create_project

    other = create_project(db, "other", actor="root").project_id
    assert audit.verify(db, project_id=0).checked == 6  # the six tracking events
    # project creation is administration: its admins see it, its other readers do not
    assert audit.verify(db, project_id=other).checked == 1
    assert audit.verify(db, project_id=other, include_admin=False).checked == 0
    assert audit.events(db, project_id=other, include_admin=False) == []
    assert [e["action"] for e in audit.events(db, project_id=other)] == ["project.create"]
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    mine = audit.verify(db, project_id=0)
    assert not mine.ok and mine.broken_seq == 3 and "edited" in (mine.reason or "")
    theirs = audit.verify(db, project_id=other)
    assert not theirs.ok and theirs.broken_seq is None and theirs.checked == 0
    assert "outside what you may read" in (theirs.reason or "")


def test_a_deleted_event_is_not_located_for_a_projects_reader(db: Database) -> None:
    # whose event it was cannot be known once it is gone
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    scoped = audit.verify(db, project_id=0)
    assert not scoped.ok and scoped.broken_seq is None and scoped.checked == 1
    assert audit.verify(db).broken_seq == 2
