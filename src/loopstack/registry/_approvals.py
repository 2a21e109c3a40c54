"""Approval requests: how a protected alias moves (evidence, four eyes, policy).

A mixin of ``SqlRegistry``: it uses the registry's row lookups, policy and alias
moves, and adds nothing to the schema the registry does not already own.
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


class Approvals(ApprovalStore):
    """Open, decide and list approval requests (mixed into ``SqlRegistry``)."""

    # provided by SqlRegistry
    project_id: int
    actor: str
    _model_row: Any
    _version_row: Any
    _policy: Any
    _move_alias: Any
    _write: Any
    db: Any

    def _request(self, conn: Connection, request_id: str) -> tuple[Any, Any]:
        row = conn.execute(
            select(AP).where(AP.c.request_id == request_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"no approval request with id {request_id!r}")
        model = conn.execute(select(RM).where(RM.c.model_id == row.model_id)).first()
        if model is None or model.project_id != self.project_id:
            raise NotFound(f"no approval request with id {request_id!r}")
        return row, model

    @staticmethod
    def _as_request(name: str, row: Any) -> ApprovalRequest:
        return ApprovalRequest(
            row.request_id,
            name,
            row.version,
            row.alias,
            row.state,
            row.requested_by,
            row.requested_at,
            json.loads(row.evidence),
            row.decided_by,
            row.decided_at,
            row.comment,
        )

    def request_promotion(
        self,
        name: str,
        version: int | str,
        *,
        alias: str = "production",
        evidence: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        """Open an approval request to move ``alias`` to ``version``, carrying its evidence.

        Under a policy with ``auto_approve_when_gates_pass``, a request whose evidence says
        ``gates_passed: true`` is approved (and the alias moved) at once, by "policy".
        """
        alias = validate_alias(alias)
        evidence = dict(evidence or {})

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
            if auto:
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
        """Approve (and move the alias) or reject a pending request. The caller checks the role."""

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
            if approve:
                locked = self._model_row(conn, model.name, lock=True)
                self._move_alias(
                    conn,
                    locked,
                    model.name,
                    row.alias,
                    row.version,
                    force=force,
                    reason=comment or "approved",
                    approval_id=request_id,
                )
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
