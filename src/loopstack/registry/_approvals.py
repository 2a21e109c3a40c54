"""Approval requests: how a protected alias moves (evidence, four eyes, policy).

A direct request (``apply_at="approval"``, what ``loopstack models promote`` opens)
moves its alias when it is approved. A rollout's request (``apply_at="promotion"``)
is approved the same way, by the same people or policy, but its approval only
authorises the rollout: the alias stays where it is (the signature check is still made
at approval) until the rollout promotes and calls ``apply_request`` (approved ->
applied); a rollout that rolls back never moves it.

A mixin of ``SqlRegistry``: it uses the registry's row lookups, policy and alias
moves, and adds nothing to the schema the registry does not already own (a rollout's
request is marked in its evidence JSON, under ``_apply``, which ``ApprovalRequest``
shows as ``apply_at``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, update

from loopstack.errors import Conflict, Forbidden, Invalid, NotFound
from loopstack.registry._entities import ApprovalRequest, validate_alias
from loopstack.registry._store import ApprovalStore
from loopstack.store.metadata.schema import ApprovalRequest as ApprovalRow
from loopstack.store.metadata.schema import ModelVersion as VersionRow
from loopstack.store.metadata.schema import RegisteredModel as ModelRow
from loopstack.tracking._entities import now_ms

__all__ = ["Approvals"]

AP, MV = cast(Table, ApprovalRow.__table__), cast(Table, VersionRow.__table__)
RM = cast(Table, ModelRow.__table__)

#: where in the evidence JSON a rollout's request keeps {"at": "promotion", "force": ...}
APPLY_KEY = "_apply"
APPLY_AT = ("approval", "promotion")


class Approvals(ApprovalStore):
    """Open, decide and list approval requests (mixed into ``SqlRegistry``)."""

    # provided by SqlRegistry
    project_id: int
    actor: str
    _model_row: Any
    _version_row: Any
    _policy: Any
    _move_alias: Any
    _refuse_breaking_move: Any
    _write: Any
    db: Any

    def _request(self, conn: Connection, request_id: str) -> tuple[Any, Any]:
        row = conn.execute(
            select(AP).where(AP.c.request_id == request_id).with_for_update()
        ).first()
        model = None if row is None else self._model_of(conn, row)
        if model is None:
            raise NotFound(f"no approval request with id {request_id!r}")
        return row, model

    def get_request(self, request_id: str) -> ApprovalRequest:
        """The approval request ``request_id`` of this project; ``NotFound`` if none."""

        def run(conn: Connection) -> ApprovalRequest:
            row = conn.execute(select(AP).where(AP.c.request_id == request_id)).first()
            model = None if row is None else self._model_of(conn, row)
            if row is None or model is None:
                raise NotFound(f"no approval request with id {request_id!r}")
            return self._as_request(model.name, row)

        return cast(ApprovalRequest, self.db.read(run))

    def _model_of(self, conn: Connection, row: Any) -> Any:
        """The request row's model, if it is this project's."""
        model = conn.execute(select(RM).where(RM.c.model_id == row.model_id)).first()
        return model if model is not None and model.project_id == self.project_id else None

    @staticmethod
    def _as_request(name: str, row: Any) -> ApprovalRequest:
        evidence = json.loads(row.evidence)
        marker = evidence.pop(APPLY_KEY, None) or {}
        return ApprovalRequest(
            row.request_id,
            name,
            row.version,
            row.alias,
            row.state,
            row.requested_by,
            row.requested_at,
            evidence,
            row.decided_by,
            row.decided_at,
            row.comment,
            apply_at=str(marker.get("at", "approval")),
        )

    def request_promotion(
        self,
        name: str,
        version: int | str,
        *,
        alias: str = "production",
        evidence: dict[str, Any] | None = None,
        apply_at: str = "approval",
    ) -> ApprovalRequest:
        """Open an approval request to move ``alias`` to ``version``, carrying its evidence.

        Under a policy with ``auto_approve_when_gates_pass``, a request whose evidence says
        ``gates_passed: true`` is approved (and the alias moved) at once, by "policy".
        ``apply_at="promotion"`` (a rollout's request): approving it moves nothing; the
        rollout moves the alias with ``apply_request`` when it promotes.
        """
        alias = validate_alias(alias)
        evidence = dict(evidence or {})
        if apply_at not in APPLY_AT:
            raise Invalid(
                f"apply_at must be one of {', '.join(APPLY_AT)}; got {apply_at!r}",
                field="apply_at",
            )
        if APPLY_KEY in evidence:
            raise Invalid(
                f"the evidence key {APPLY_KEY!r} is the registry's own (it marks a rollout's "
                f"request); got it in the evidence: rename it",
                field="evidence",
            )
        if apply_at == "promotion":
            evidence[APPLY_KEY] = {"at": "promotion", "force": False}

        def run(conn: Connection) -> ApprovalRequest:
            model = self._model_row(conn, name, lock=True)
            target = self._version_row(conn, model.model_id, name, version)
            if conn.execute(
                select(AP.c.request_id).where(
                    AP.c.model_id == model.model_id,
                    AP.c.version == target.version,
                    AP.c.alias == alias,
                    AP.c.state == "pending",
                )
            ).first():
                raise Conflict(
                    f"a request to move {name}@{alias} to version {target.version} "
                    "is already pending"
                )
            policy = self._policy(conn, model.project_id)
            missing = [k for k in policy.get("required_evidence", []) if k not in evidence]
            if missing:
                raise Invalid(
                    f"this project's policy requires evidence {missing} for a "
                    f"promotion; got only {sorted(evidence)}",
                    field="evidence",
                )
            evidence.setdefault("lineage", _lineage_completeness(conn, target))
            if target.run_id:  # the evaluation metrics the version's run logged
                evidence.setdefault("metrics", _run_metrics(conn, target.run_id))
            request_id = uuid.uuid4().hex
            now = now_ms()
            auto = bool(policy["auto_approve_when_gates_pass"] and evidence.get("gates_passed"))
            conn.execute(
                AP.insert().values(
                    request_id=request_id,
                    model_id=model.model_id,
                    version=target.version,
                    alias=alias,
                    state="approved" if auto else "pending",
                    requested_by=self.actor,
                    requested_at=now,
                    evidence=json.dumps(evidence, sort_keys=True, default=str),
                    decided_by="policy" if auto else None,
                    decided_at=now if auto else None,
                    comment="approved automatically: every declared gate passed" if auto else "",
                )
            )
            conn.execute(
                update(MV)
                .where(MV.c.model_id == model.model_id, MV.c.version == target.version)
                .values(approval_state="approved" if auto else "pending", updated_at=now)
            )
            if auto and apply_at == "promotion":  # checked now, moved at the promotion
                self._refuse_breaking_move(conn, model, name, alias, target)
            elif auto:
                self._move_alias(
                    conn,
                    model,
                    name,
                    alias,
                    target.version,
                    force=False,
                    reason="automatic approval",
                    approval_id=request_id,
                )
            row = conn.execute(select(AP).where(AP.c.request_id == request_id)).one()
            return self._as_request(name, row)

        return cast(
            ApprovalRequest,
            self._write(
                run,
                "model.request_promotion",
                lambda r: f"{name}/{r.version}",
                {"alias": alias, "version": str(version)},
            ),
        )

    def decide(
        self, request_id: str, *, approve: bool, comment: str = "", force: bool = False
    ) -> ApprovalRequest:
        """Approve (and move the alias) or reject a pending request. The caller checks the role.

        A rollout's request (``apply_at="promotion"``) approved moves nothing yet: the
        move is checked now (``force`` skips the signature check, now and at the move)
        and made by ``apply_request`` when the rollout promotes."""

        def run(conn: Connection) -> ApprovalRequest:
            row, model = self._request(conn, request_id)
            if row.state != "pending":
                raise Conflict(f"approval request {request_id} is already {row.state}")
            version = self._version_row(conn, model.model_id, model.name, row.version)
            policy = self._policy(conn, model.project_id)
            if (
                self.actor in (version.created_by, row.requested_by)
                and not policy["allow_self_approval"]
            ):
                what = (
                    "registered"
                    if self.actor == version.created_by
                    else "requested the promotion of"
                )
                raise Forbidden(
                    f"{self.actor!r} {what} {model.name} version {row.version} "
                    "and cannot decide on its own promotion: another ml-engineer "
                    "must approve or reject it (a team of one may allow it: `loopstack "
                    "projects policy <project> --self-approval`)"
                )
            now = now_ms()
            state = "approved" if approve else "rejected"
            conn.execute(
                update(AP)
                .where(AP.c.request_id == request_id)
                .values(state=state, decided_by=self.actor, decided_at=now, comment=comment)
            )
            conn.execute(
                update(MV)
                .where(MV.c.model_id == model.model_id, MV.c.version == row.version)
                .values(approval_state=state, updated_at=now)
            )
            deferred = self._as_request(model.name, row).apply_at == "promotion"
            if approve and deferred:
                locked = self._model_row(conn, model.name, lock=True)
                if not force:
                    self._refuse_breaking_move(conn, locked, model.name, row.alias, version)
                _mark_for_promotion(conn, row, force=force)
            elif approve:
                self._move_by(conn, model.name, row, force=force, reason=comment or "approved")
            return self._as_request(
                model.name, conn.execute(select(AP).where(AP.c.request_id == request_id)).one()
            )

        action = "model.approve" if approve else "model.reject"
        return cast(
            ApprovalRequest,
            self._write(
                run,
                action,
                lambda r: f"{r.name}/{r.version}",
                {"request_id": request_id, "comment": comment},
            ),
        )

    def defer_request(self, request_id: str) -> ApprovalRequest:
        """Make a pending direct request a rollout's: approving it will authorise the
        rollout and move nothing; the alias moves at the rollout's promotion
        (``apply_request``). A request that is a rollout's already is returned as it is;
        a decided one is a ``Conflict``."""

        def run(conn: Connection) -> ApprovalRequest:
            row, model = self._request(conn, request_id)
            if row.state != "pending":
                raise Conflict(
                    f"approval request {request_id} is already {row.state}: only a pending "
                    "request can wait for a rollout's promotion"
                )
            _mark_for_promotion(conn, row, force=False)
            return self._as_request(
                model.name, conn.execute(select(AP).where(AP.c.request_id == request_id)).one()
            )

        before = self.get_request(request_id)
        if before.apply_at == "promotion":
            return before
        return cast(
            ApprovalRequest,
            self._write(
                run,
                "model.defer_request",
                lambda r: f"{r.name}/{r.version}",
                {"request_id": request_id, "apply_at": "promotion"},
            ),
        )

    def apply_request(self, request_id: str, *, reason: str = "") -> ApprovalRequest:
        """Move the alias of an approved rollout's request (``apply_at="promotion"``) to
        its version: approved -> applied, the move recorded with the request's id.

        The approval was the authority, so no role is checked here: the rollout calls it
        when it promotes. An applied request is returned as it is (nothing moves twice);
        a direct request (moved at its approval) or one not approved is a ``Conflict``.
        """

        before = self.get_request(request_id)
        if before.state == "applied":
            return before

        def run(conn: Connection) -> ApprovalRequest:
            row, model = self._request(conn, request_id)
            marker = json.loads(row.evidence).get(APPLY_KEY) or {}
            if marker.get("at") != "promotion":
                raise Conflict(
                    f"approval request {request_id} moves its alias at its approval, not at "
                    "a rollout's promotion: there is nothing to apply"
                )
            if row.state != "approved":
                raise Conflict(
                    f"approval request {request_id} is {row.state}: only an approved request "
                    "is applied"
                )
            why = reason or "applied at the rollout's promotion"
            self._move_by(conn, model.name, row, force=bool(marker.get("force")), reason=why)
            conn.execute(update(AP).where(AP.c.request_id == request_id).values(state="applied"))
            return self._as_request(
                model.name, conn.execute(select(AP).where(AP.c.request_id == request_id)).one()
            )

        return cast(
            ApprovalRequest,
            self._write(
                run,
                "model.apply_request",
                lambda r: f"{r.name}/{r.version}",
                {"request_id": request_id, "reason": reason},
            ),
        )

    def _move_by(self, conn: Connection, name: str, row: Any, *, force: bool, reason: str) -> None:
        """Move the request row's alias to its version, recorded with the request's id."""
        locked = self._model_row(conn, name, lock=True)
        self._move_alias(
            conn,
            locked,
            name,
            row.alias,
            row.version,
            force=force,
            reason=reason,
            approval_id=row.request_id,
        )

    def list_requests(
        self, *, name: str | None = None, state: str | None = None
    ) -> list[ApprovalRequest]:
        def run(conn: Connection) -> list[ApprovalRequest]:
            q = (
                select(AP, RM.c.name)
                .join(RM, RM.c.model_id == AP.c.model_id)
                .where(RM.c.project_id == self.project_id)
            )
            if name:
                q = q.where(RM.c.name == name)
            if state:
                q = q.where(AP.c.state == state)
            return [
                self._as_request(r.name, r)
                for r in conn.execute(q.order_by(AP.c.requested_at)).all()
            ]

        return cast(list[ApprovalRequest], self.db.read(run))


def _mark_for_promotion(conn: Connection, row: Any, *, force: bool) -> None:
    """Mark the request row as a rollout's (its alias moves at the promotion, ``force``:
    past the signature check), in its evidence JSON."""
    evidence = json.loads(row.evidence)
    evidence[APPLY_KEY] = {"at": "promotion", "force": force}
    conn.execute(
        update(AP)
        .where(AP.c.request_id == row.request_id)
        .values(evidence=json.dumps(evidence, sort_keys=True, default=str))
    )


def _run_metrics(conn: Connection, run_id: str) -> dict[str, float | str]:
    from loopstack.store.metadata.schema import LatestMetric

    lm = cast(Table, LatestMetric.__table__)
    rows = conn.execute(select(lm.c.key, lm.c.value, lm.c.is_nan).where(lm.c.run_id == run_id))
    # A NaN is stored as 0 flagged is_nan; the evidence is JSON, so it says "NaN" (and an
    # infinity "Infinity"), as the APIs render them.
    from loopstack.tracking._entities import metric_value_to_json

    return {r.key: "NaN" if r.is_nan else metric_value_to_json(r.value) for r in rows}


def _lineage_completeness(conn: Connection, version: Any) -> dict[str, Any]:
    """Which links of the version's lineage are recorded (evidence for an approver)."""
    from loopstack.store.metadata.schema import RunInput

    inputs = 0
    if version.run_id:
        ri = cast(Table, RunInput.__table__)
        inputs = (
            conn.execute(
                select(func.count()).select_from(ri).where(ri.c.run_id == version.run_id)
            ).scalar()
            or 0
        )
    checks = {
        "run": bool(version.run_id),
        "datasets": inputs > 0,
        "code_version": bool(version.code_version),
        "signature": version.signature != "{}",
    }
    return {"complete": all(checks.values()), **checks}
