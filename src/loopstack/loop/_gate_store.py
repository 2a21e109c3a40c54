"""Gate outcomes attached to the model version: stored, audited, tagged, read back.

``record_gates`` writes one ``gate_results`` row per gate (evidence as JSON) in one
audited transaction (action ``gates.evaluate``), then tags the version
``loopstack.gates`` = ``passed`` / ``failed`` and ``loopstack.gates.reasons`` with the
failed reasons. ``require_gates_passed`` is what a rollout asks before it starts.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, select

from loopstack.errors import GateFailed, Invalid, NotFound
from loopstack.loop._gates_report import GateReport, GateResult, version_number
from loopstack.store.metadata.schema_loop import GateResultRow

if TYPE_CHECKING:
    import pandas as pd

    from loopstack.loop._gates import Gates
    from loopstack.store import Stores

__all__ = [
    "GATES_REASONS_TAG",
    "GATES_TAG",
    "gate_report",
    "gate_results",
    "gate_version",
    "record_gates",
    "require_gates_passed",
]

#: the model version tag holding the latest gate outcome: "passed" or "failed"
GATES_TAG = "loopstack.gates"
#: the model version tag holding the failed reasons of the latest evaluation
GATES_REASONS_TAG = "loopstack.gates.reasons"
_GR = cast(Table, GateResultRow.__table__)
_MAX_TAG = 8000


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _where(stores: Stores | None, project_id: int | None) -> tuple[Stores, int]:
    """The stores and project a local call acts in: those given (project 0 by default),
    else the configured stores and the project in use (``ls.set_project``,
    LOOPSTACK_PROJECT, else ``default``)."""
    if stores is not None:
        return stores, 0 if project_id is None else project_id
    from loopstack.config import settings
    from loopstack.store import open_stores
    from loopstack.store.remote import local_config

    opened = open_stores(local_config(settings()))
    if project_id is not None:
        return opened, project_id
    from loopstack.auth import project_in_use

    return opened, project_in_use(opened.db)


def record_gates(
    report: GateReport,
    model_name: str,
    version: int | str,
    *,
    stores: Stores | None = None,
    project_id: int | None = None,
    actor: str = "loop",
) -> str:
    """Attach ``report`` to the model version: its rows, its audit event, its tags.
    Returns the evaluation's id.

    >>> record_gates(evaluate_gates(gates, "models:/fraud/4", data=df), "fraud", 4)
    """
    import uuid

    from loopstack.registry import SqlRegistry
    from loopstack.tracking._entities import now_ms

    stores, project_id = _where(stores, project_id)
    reg = SqlRegistry(stores, actor=actor, project_id=project_id)
    mv = reg.get_model_version(model_name, version)  # NotFound before anything is written
    number = str(mv.version)
    evaluated = report.challenger or ""
    if evaluated.startswith("models:/") and evaluated != mv.uri:
        raise Invalid(
            f"this report evaluated {evaluated}; it cannot be recorded on {mv.uri}",
            field="version",
        )
    evaluation = report.evaluation_id or uuid.uuid4().hex
    now = now_ms()
    rows = [
        {
            "project_id": project_id,
            "model_name": mv.name,
            "version": number,
            "gate": r.gate[:128],
            "passed": r.passed,
            "reason": r.reason,
            "evidence": json.dumps(
                _plain(
                    {
                        "evaluation_id": evaluation,
                        "challenger": report.challenger,
                        "champion": report.champion,
                        "evidence": r.evidence,
                    }
                ),
                sort_keys=True,
                allow_nan=False,
            ),
            "evaluated_at": now,
        }
        for r in report.results
    ]

    def write(conn: Connection) -> None:
        if rows:
            conn.execute(_GR.insert(), rows)

    stores.db.write(
        write,
        actor=actor,
        action="gates.evaluate",
        object_type="model",
        object_id=f"{mv.name}/{number}",
        payload={
            "evaluation_id": evaluation,
            "passed": report.passed,
            "champion": report.champion,
            "failed": [r.gate for r in report.failed],
        },
        project_id=project_id,
    )
    reg.set_model_version_tag(mv.name, number, GATES_TAG, "passed" if report.passed else "failed")
    reasons = "; ".join(report.failed_reasons())
    if len(reasons) > _MAX_TAG:
        reasons = reasons[: _MAX_TAG - 1] + "…"
    reg.set_model_version_tag(mv.name, number, GATES_REASONS_TAG, reasons)
    return evaluation


def _read(
    stores: Stores, project_id: int, model_name: str, version: int | str
) -> GateReport | None:
    """The latest recorded evaluation of the version, with when and by whom (its audited
    event's actor); None when none was recorded, ``NotFound`` for an unknown version."""
    from loopstack.store.audit import latest_event

    number = version_number(version)

    def run(conn: Connection) -> list[Any]:
        q = (
            select(_GR)
            .where(
                _GR.c.project_id == project_id,
                _GR.c.model_name == model_name,
                _GR.c.version == number,
            )
            .order_by(_GR.c.id)
        )
        return list(conn.execute(q))

    rows = stores.db.read(run)
    if not rows:
        from loopstack.registry import SqlRegistry

        # an unknown version is NotFound, not a version without gates
        SqlRegistry(stores, project_id=project_id).get_model_version(model_name, version)
        return None
    stored = [(row, json.loads(row.evidence)) for row in rows]
    latest = stored[-1][1].get("evaluation_id")
    mine = [(row, doc) for row, doc in stored if doc.get("evaluation_id") == latest]
    head = mine[0][1]
    event = latest_event(
        stores.db,
        object_type="model",
        object_id=f"{model_name}/{number}",
        actions=("gates.evaluate",),
        project_id=project_id,
    )
    return GateReport(
        [GateResult(r.gate, bool(r.passed), r.reason, d.get("evidence", {})) for r, d in mine],
        challenger=head.get("challenger"),
        champion=head.get("champion"),
        evaluation_id=latest,
        evaluated_at=int(mine[0][0].evaluated_at),
        recorded_by=None if event is None else str(event.actor),
    )


def gate_report(
    model_name: str,
    version: int | str,
    *,
    stores: Stores | None = None,
    project_id: int | None = None,
) -> GateReport | None:
    """The latest recorded evaluation of the version's gates (when, by whom, each gate's
    result and evidence), or None if none was recorded; ``NotFound`` for an unknown
    version. Without ``stores``: through the server for an http(s) tracking URI
    (``GET /api/v1/models/{name}/versions/{version}/gates``), else the configured store,
    in the project in use.

    >>> ls.loop.gate_report("fraud", 4).failed_reasons()          # doctest: +SKIP
    """
    if stores is not None:
        return _read(stores, 0 if project_id is None else project_id, model_name, version)
    from loopstack.auth._open import open_in_project
    from loopstack.loop._gate_client import RestGates

    return open_in_project(
        lambda client: RestGates(client).report(model_name, version),
        lambda opened, _actor, pid: _read(opened, pid, model_name, version),
        project_id=project_id,
    )


def gate_results(
    model_name: str,
    version: int | str,
    *,
    stores: Stores | None = None,
    project_id: int | None = None,
) -> list[GateResult]:
    """The results of the latest recorded evaluation, one per gate (empty if none);
    locally or through a server, as :func:`gate_report`.

    >>> [r.gate for r in gate_results("fraud", 4) if not r.passed]
    """
    report = gate_report(model_name, version, stores=stores, project_id=project_id)
    return [] if report is None else report.results


def require_gates_passed(
    model_name: str,
    version: int | str,
    *,
    stores: Stores | None = None,
    project_id: int | None = None,
) -> GateReport:
    """The version's latest gate report if every gate passed; else ``GateFailed`` naming
    each failed gate and why (or saying no gates were recorded); ``NotFound`` for an
    unknown version. Locally or through a server, as :func:`gate_report`.

    >>> require_gates_passed("fraud", 4)   # before a rollout starts
    """
    report = gate_report(model_name, version, stores=stores, project_id=project_id)
    number = version_number(version)
    if report is None:
        raise GateFailed(
            f"model {model_name!r} version {number} has no gate results: evaluate and record "
            "its gates (evaluate_gates, record_gates) before it may roll out",
            field="gates",
        )
    return report.raise_for_failures(f"model {model_name!r} version {number}")


def gate_version(
    gates: Gates,
    model_name: str,
    version: int | str,
    *,
    champion_alias: str | None = "production",
    data: pd.DataFrame | None = None,
    label: str = "y",
    dataset_version: Any = None,
    suite: Any = None,
    stores: Stores | None = None,
    project_id: int | None = None,
    actor: str = "loop",
) -> GateReport:
    """Evaluate a registered version's gates against the version ``champion_alias``
    names (none yet, or the version itself: no champion) and record the outcome on it.

    What a pipeline's gate step calls; ``.raise_for_failures()`` on the report stops
    the loop with the reasons.

    >>> gate_version(gates, "fraud", 4, dataset_version="holdout/3").raise_for_failures()
    """
    from loopstack.loop._gates_eval import evaluate_gates
    from loopstack.registry import SqlRegistry

    stores, project_id = _where(stores, project_id)
    reg = SqlRegistry(stores, actor=actor, project_id=project_id)
    challenger = reg.get_model_version(model_name, version)
    champion = None
    if champion_alias is not None:
        try:
            champion = reg.get_version_by_alias(model_name, champion_alias)
        except NotFound:
            champion = None
        if champion is not None and champion.version == challenger.version:
            champion = None
    report = evaluate_gates(
        gates,
        challenger,
        champion,
        data=data,
        label=label,
        dataset_version=dataset_version,
        suite=suite,
        stores=stores,
        project_id=project_id,
    )
    record_gates(
        report, model_name, challenger.version, stores=stores, project_id=project_id, actor=actor
    )
    return report
