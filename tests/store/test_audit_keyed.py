"""The keyed audit chain: whoever edits the database without the key is caught and named.

Each attack is made the way an attacker with database access would: editing rows
directly, recomputing hashes, fixing the head row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from loopstack.config import settings
from loopstack.errors import Conflict
from loopstack.store import audit
from loopstack.store.metadata import Database
from loopstack.tracking import TrackingClient


def _activity(client: TrackingClient, n: int = 3) -> None:
    run = client.create_run(client.set_experiment("audited"))
    for i in range(n):
        client.log_metric(run.run_id, "m", float(i), step=i)
    client.set_terminated(run.run_id)


@pytest.fixture
def client(use_db: str) -> TrackingClient:
    client = TrackingClient()
    _activity(client)
    return client


@pytest.fixture
def db(client: TrackingClient) -> Database:
    return client.store.db  # type: ignore[attr-defined,no-any-return]


def _rows(db: Database) -> list[dict]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
    return [dict(r) for r in rows]


def _fields(ev: dict, prev: str) -> list[str]:
    fields = [
        prev,
        str(ev["seq"]),
        str(ev["ts"]),
        ev["actor"],
        ev["action"],
        ev["object_type"],
        ev["object_id"],
        ev["digest"],
    ]
    if ev["project_id"] is not None:
        fields.append(f"project={ev['project_id']}")
    return fields


def _plain(ev: dict, prev: str) -> str:
    return hashlib.sha256("\x1f".join(_fields(ev, prev)).encode()).hexdigest()


def _rewrite(db: Database, rows: list[dict], link) -> None:  # noqa: ANN001 - a callable
    """Write ``rows`` back with every link recomputed by ``link(ev, prev)``, head fixed."""
    prev = audit.GENESIS_HASH
    with db.engine.begin() as conn:
        for ev in rows:
            ev["prev_hash"], ev["hash"] = prev, link(ev, prev)
            conn.execute(
                text(
                    "UPDATE audit_events SET actor=:actor, prev_hash=:prev_hash, hash=:hash,"
                    " key_id=:key_id WHERE seq=:seq"
                ),
                ev,
            )
            prev = ev["hash"]
        conn.execute(
            text("UPDATE audit_head SET seq=:s, hash=:h WHERE id=1"),
            {"s": rows[-1]["seq"], "h": prev},
        )


def test_events_are_signed_with_a_key_kept_outside_the_database(
    db: Database, ls_home: Path
) -> None:
    key_file = ls_home / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    lines = [ln for ln in key_file.read_text().splitlines() if not ln.startswith("#")]
    kid = next(ln.split(":")[0] for ln in lines if ":" in ln)
    rows = _rows(db)
    assert rows and {r["key_id"] for r in rows} == {kid}
    assert "legacy_until=0" in key_file.read_text()
    result = audit.verify(db)
    assert result.ok and result.checked == len(rows) and result.legacy == 0


def test_an_edited_row_rechained_with_plain_sha256_is_named(db: Database) -> None:
    # The attack that passed before: edit a row, recompute every later link, fix the head.
    rows = _rows(db)
    rows[2]["actor"] = "mallory"
    _rewrite(db, rows, _plain)
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 1  # the first link the attacker recomputed
    assert f"under key {rows[0]['key_id']}: the row was edited" in (result.reason or "")


def test_a_chain_downgraded_to_unkeyed_links_is_named(db: Database) -> None:
    # Dropping the key ids, so the plain sha256 links pass as "legacy" events.
    rows = _rows(db)
    rows[2]["actor"] = "mallory"
    for ev in rows:
        ev["key_id"] = None
    _rewrite(db, rows, _plain)
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 1
    assert "carries no key id, but the log held only 0 unkeyed events" in (result.reason or "")


def test_an_edited_row_rechained_under_a_guessed_key_is_named(db: Database) -> None:
    rows = _rows(db)
    rows[3]["actor"] = "mallory"
    wrong = b"not-the-real-key-" * 2

    def link(ev: dict, prev: str) -> str:
        msg = "\x1f".join([*_fields(ev, prev), f"kid={ev['key_id']}"])
        return hmac.new(wrong, msg.encode(), hashlib.sha256).hexdigest()

    _rewrite(db, rows, link)
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 1
    assert "does not match its fields under key" in (result.reason or "")


def test_a_single_edited_row_is_named(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET action='run.nothing' WHERE seq=4"))
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 4
    assert "the row was edited" in (result.reason or "")


def test_a_cut_tail_with_a_fixed_head_is_caught_by_the_anchors(
    client: TrackingClient, db: Database, tmp_path: Path
) -> None:
    anchors = str(tmp_path / "outside" / "anchors.jsonl")
    first = audit.anchor(db, to=anchors)
    _activity(client, 2)
    last = audit.anchor(db, to=anchors)
    assert last["seq"] > first["seq"] and audit.verify(db, anchors=anchors).anchors == 2
    keep = last["seq"] - 3
    with db.engine.begin() as conn:
        kept_hash = conn.execute(
            text("SELECT hash FROM audit_events WHERE seq=:s"), {"s": keep}
        ).scalar()
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": keep})
        conn.execute(
            text("UPDATE audit_head SET seq=:s, hash=:h WHERE id=1"), {"s": keep, "h": kept_hash}
        )
    assert audit.verify(db).ok  # the chain alone cannot tell
    result = audit.verify(db, anchors=anchors)
    assert not result.ok and result.broken_seq == keep + 1
    assert f"the log was cut: an anchor at seq {last['seq']}" in (result.reason or "")
    assert f"but the log ends at {keep}" in (result.reason or "")

    # Writing on after the cut: the anchored seq exists again, with another hash.
    _activity(client, 3)
    result = audit.verify(db, anchors=anchors)
    assert not result.ok and result.broken_seq == last["seq"]
    assert "differs from the one anchored" in (result.reason or "")


def test_an_edited_anchor_is_named(db: Database, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    audit.anchor(db, to=str(anchors))
    line = json.loads(anchors.read_text())
    line["seq"] -= 1
    anchors.write_text(json.dumps(line) + "\n")
    result = audit.verify(db, anchors=str(anchors))
    assert not result.ok and "does not carry a valid MAC" in (result.reason or "")


def test_anchors_in_an_object_store(db: Database) -> None:
    url = f"memory://audit-test/{uuid.uuid4().hex}/anchors.jsonl"  # memory:// is per process
    audit.anchor(db, to=url)
    audit.anchor(db, to=url)
    assert audit.verify(db, anchors=url).anchors == 2


def test_a_broken_chain_is_not_anchored(db: Database, tmp_path: Path) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor='mallory' WHERE seq=2"))
    with pytest.raises(Conflict, match="broken at seq 2"):
        audit.anchor(db, to=str(tmp_path / "a.jsonl"))
    assert not (tmp_path / "a.jsonl").exists()


def test_rotated_keys_verify_and_a_missing_key_is_named(
    client: TrackingClient, db: Database, ls_home: Path
) -> None:
    keys = db.audit_keys
    old = keys.active()
    new = keys.rotate()
    assert new != old and keys.active() == new
    _activity(client, 1)
    rows = _rows(db)
    assert [r["key_id"] for r in rows if r["key_id"] != old] and rows[-1]["key_id"] == new
    assert audit.verify(db).ok

    key_file = ls_home / "audit.key"
    key_file.write_text(
        "".join(
            line + "\n" for line in key_file.read_text().splitlines() if not line.startswith(old)
        )
    )
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == 1
    assert f"signed with audit key {old!r}, which is not among the known keys" in (
        result.reason or ""
    )


def test_a_key_from_the_environment_signs_and_the_file_keeps_verifying(
    client: TrackingClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.store._audit_keys import keyring_for

    monkeypatch.setenv("LOOPSTACK_AUDIT_KEY", "ab" * 32)
    monkeypatch.setenv("LOOPSTACK_AUDIT_KEY_ID", "vault-2026")
    db.audit_keys = keyring_for(settings())
    _activity(client, 1)
    assert _rows(db)[-1]["key_id"] == "vault-2026"
    assert audit.verify(db).ok
    monkeypatch.setenv("LOOPSTACK_AUDIT_KEY", "cd" * 32)  # the wrong secret under that id
    result = audit.verify(db, keys=keyring_for(settings()))
    assert not result.ok and "under key vault-2026" in (result.reason or "")


def test_a_too_short_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack.errors import Invalid
    from loopstack.store._audit_keys import keyring_for

    monkeypatch.setenv("LOOPSTACK_AUDIT_KEY", "short")
    with pytest.raises(Invalid, match="at least 16 bytes"):
        keyring_for(settings())


def test_legacy_events_verify_and_stay_a_prefix(client: TrackingClient, ls_home: Path) -> None:
    from loopstack.store._audit_keys import AuditKeyring

    # A log written before keys: plain sha256 links, no key ids, and no key file yet.
    db = client.store.db  # type: ignore[attr-defined]
    rows = _rows(db)
    for ev in rows:
        ev["key_id"] = None
    _rewrite(db, rows, _plain)
    (ls_home / "audit.key").unlink()
    db.audit_keys = AuditKeyring(ls_home / "audit.key")
    result = audit.verify(db)
    assert result.ok and result.legacy == len(rows)

    _activity(client, 1)  # the first keyed write makes the key file, recording the legacy part
    assert f"legacy_until={len(rows)}" in (ls_home / "audit.key").read_text()
    result = audit.verify(db)
    assert result.ok and result.legacy == len(rows) and result.checked > len(rows)

    # A keyed event turned back into an unkeyed one is named, wherever it sits.
    rows = _rows(db)
    rows[-1]["key_id"] = None
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET key_id=NULL, hash=:h WHERE seq=:s"),
            {"h": _plain(rows[-1], rows[-1]["prev_hash"]), "s": rows[-1]["seq"]},
        )
    result = audit.verify(db)
    assert not result.ok and result.broken_seq == rows[-1]["seq"]
    assert "carries no key id but follows keyed events" in (result.reason or "")


def test_verify_against_missing_anchors_fails(db: Database, tmp_path: Path) -> None:
    result = audit.verify(db, anchors=str(tmp_path / "none.jsonl"))
    assert not result.ok and "there are no anchors at" in (result.reason or "")


def test_writers_anchor_every_n_events(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchors = tmp_path / "auto.jsonl"
    monkeypatch.setenv("LOOPSTACK_AUDIT_ANCHOR_EVERY", "2")
    monkeypatch.setenv("LOOPSTACK_AUDIT_ANCHOR_PATH", str(anchors))
    client = TrackingClient()
    _activity(client, 3)  # six events
    db = client.store.db  # type: ignore[attr-defined]
    seqs = [json.loads(line)["seq"] for line in anchors.read_text().splitlines()]
    assert seqs == [2, 4, 6]
    assert audit.verify(db, anchors=str(anchors)).anchors == 3
    with db.engine.begin() as conn:
        h = conn.execute(text("SELECT hash FROM audit_events WHERE seq=5")).scalar()
        conn.execute(text("DELETE FROM audit_events WHERE seq=6"))
        conn.execute(text("UPDATE audit_head SET seq=5, hash=:h WHERE id=1"), {"h": h})
    result = audit.verify(db, anchors=str(anchors))
    assert not result.ok and "the log was cut: an anchor at seq 6" in (result.reason or "")


def test_a_bad_anchor_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack.errors import Invalid

    monkeypatch.setenv("LOOPSTACK_AUDIT_ANCHOR_EVERY", "often")
    with pytest.raises(Invalid, match="LOOPSTACK_AUDIT_ANCHOR_EVERY must be a whole number"):
        settings()
