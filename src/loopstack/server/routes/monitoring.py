"""An endpoint's monitoring report: GET /api/v1/monitoring/{endpoint}/report.

What ``loopstack.monitoring.build_report`` makes of the prediction log of the caller's
project over a window (drift per feature against a reference, the distributions, the
volume, alerts, performance), as ``MonitoringReport.to_dict`` writes it. The reference
is the training dataset of a model version: ``model_version`` (``name/version``) when
given, else the version the endpoint's primary arm serves. The endpoint is a deployment
of the caller's project (a 404 naming it otherwise). Every read (deployment,
version, run, dataset) is in the caller's project. Reading is a viewer's
(``_route_roles.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from loopstack.errors import Invalid, NotFound
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(
    prefix="/api/v1/monitoring", tags=["monitoring"], dependencies=[Depends(authorize)]
)


def _served_version(request: Request, endpoint: str) -> str | None:
    """``name/version`` of what the endpoint's primary arm (else its first serving arm)
    served at its latest revision (None when it resolved to none); NotFound when the
    caller's project has no deployment ``endpoint``."""
    from loopstack.serving import SqlDeployments

    store = SqlDeployments(
        request.app.state.stores, actor=principal_of(request).user, project_id=project_of(request)
    )
    deployment = store.get(endpoint)
    arm = deployment.primary or next((a for a in deployment.arms if a.serves), None)
    if arm is None or arm.version is None:
        return None
    return f"{arm.model}/{arm.version}"


def _training_set(request: Request, model_version: str) -> tuple[str, Any]:
    """The training dataset (``name/version``) of ``model_version`` and its rows as an
    Arrow table, read in the caller's project; NotFound saying what is missing."""
    from loopstack.data import DatasetStore
    from loopstack.registry import TRAINING_SET_TAG, SqlRegistry, training_set_of
    from loopstack.server.routes._deps import tracking_store

    name, _, number = model_version.rpartition("/")
    if not name or not number.isdigit():
        raise Invalid(
            f"a model version is NAME/VERSION (churn/3); got {model_version!r} instead",
            field="model_version",
        )
    stores, project = request.app.state.stores, project_of(request)
    version = SqlRegistry(stores, project_id=project).get_model_version(name, int(number))
    found = version.tags.get(TRAINING_SET_TAG)
    if not found and version.run_id:
        found = training_set_of(tracking_store(request).get_run(version.run_id))
    if not found:
        raise NotFound(
            f"model version {model_version} names no training dataset to compare the "
            "window with: log it as the run's input (run.log_input(dataset, "
            "context='training'))",
            field="model_version",
        )
    dataset, _, ds_version = str(found).rpartition("/")
    config = request.app.state.config
    data = DatasetStore(stores, project_id=project, cache_dir=config.home / "cache" / "datasets")
    return str(found), data.get(dataset, ds_version).to_arrow()


@router.get("/{endpoint}/report", name="monitoring_report")
def report(
    endpoint: str, request: Request, window: str = "7d", model_version: str | None = None
) -> dict:
    """The endpoint's ``MonitoringReport`` over ``window`` before now, with
    ``reference`` (the model version and dataset compared with, or null) and
    ``reference_note`` (why there is no drift section, when there is none)."""
    from loopstack.monitoring import build_report

    served = _served_version(request, endpoint)  # NotFound: no such deployment here
    chosen = model_version or served
    reference, note, used = None, "", None
    if chosen is None:
        note = (
            f"deployment {endpoint!r} serves no resolved model version: give model_version "
            "to compare the window with its training data"
        )
    else:
        try:
            dataset, reference = _training_set(request, chosen)
            used = {"model_version": chosen, "dataset": dataset}
        except NotFound as exc:
            if model_version:  # asked for by name: its absence is the answer
                raise
            note = str(exc)
    stores, project = request.app.state.stores, project_of(request)
    try:
        built = build_report(
            endpoint, window, reference=reference, stores=stores, project_id=project
        )
    except Invalid as exc:
        if reference is None:
            raise
        # nothing in the window to compare (or no column shared): the rest of the report
        built = build_report(endpoint, window, stores=stores, project_id=project)
        reference, used, note = None, None, str(exc)
    return {**built.to_dict(), "reference": used, "reference_note": note}
