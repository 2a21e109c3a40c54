"""A model version's recorded gates: GET /api/v1/models/{name}/versions/{version}/gates.

What the loop's gate step recorded on the version (``loopstack.loop.record_gates``): the
latest evaluation, when and by whom, each gate's outcome, reason and evidence. Reading
is a viewer's (``_route_roles.py``), in the caller's project; an unknown model or
version is a 404 naming it. ``loopstack.loop.RestGates`` is its client.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from loopstack.loop import gate_report, recorded_gates
from loopstack.server._security import authorize, project_of

router = APIRouter(prefix="/api/v1", tags=["registry"], dependencies=[Depends(authorize)])


@router.get("/models/{name}/versions/{version}/gates", name="models_version_gates")
def version_gates(name: str, version: str, request: Request) -> dict:
    """The version's latest recorded gate evaluation: ``recorded`` false (and no
    results) when none was recorded; ``passed``, ``challenger``, ``champion``,
    ``evaluation_id``, ``evaluated_at`` (ms), ``recorded_by``, ``results`` (gate,
    passed, reason, evidence) and ``failed_reasons`` when one was."""
    report = gate_report(
        name, version, stores=request.app.state.stores, project_id=project_of(request)
    )
    return recorded_gates(name, version, report)
