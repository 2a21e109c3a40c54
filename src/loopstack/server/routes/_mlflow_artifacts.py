"""The ``mlflow-artifacts`` proxy: upload, download and list artifacts by logical path.

A run's artifact URI is rendered as ``mlflow-artifacts:/<experiment>/<run>/artifacts``,
so the path in ``/api/2.0/mlflow-artifacts/artifacts/<path>`` is loopstack's logical
artifact path itself: what the MLflow client uploads is what ``list_artifacts`` and
``download_artifacts`` of loopstack's own API see, and the other way round.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from loopstack.errors import Invalid
from loopstack.server._security import authorize, principal_of
from loopstack.store.artifacts import ArtifactStore, sanitize_path

__all__ = ["artifacts_router"]

artifacts_router = APIRouter(dependencies=[Depends(authorize)], tags=["mlflow"])
_PREFIXES = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")
_MAX_PATH = 1000  # the manifest's path column


def _artifacts(request: Request) -> ArtifactStore:
    return request.app.state.stores.artifacts


def _logical(path: str, *, allow_empty: bool = False) -> str:
    clean = sanitize_path(path, field="path", allow_empty=allow_empty)
    if len(clean) > _MAX_PATH:
        raise Invalid(
            f"an artifact path must be at most {_MAX_PATH} characters; got {len(clean)}",
            field="path",
        )
    return clean


def _visible(request: Request, path: str) -> str:
    """The path, if its experiment (the first segment) is in the caller's project."""
    from loopstack.server._security import project_of
    from loopstack.tracking._sql_store import SqlTrackingStore

    store = SqlTrackingStore(request.app.state.stores, project_id=project_of(request))
    store.get_experiment(path.split("/", 1)[0])  # NotFound outside the project
    return path


async def upload_artifact(artifact_path: str, request: Request) -> dict:
    """PUT the request body at ``artifact_path``; the body is spooled to disk, not memory."""
    dest = _logical(artifact_path)
    await run_in_threadpool(_visible, request, dest)
    store = _artifacts(request)
    fd, tmp = tempfile.mkstemp(prefix="loopstack-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        await run_in_threadpool(store.log_file, tmp, dest, actor=principal_of(request).user)
    finally:
        os.unlink(tmp)
    return {}


def download_artifact(artifact_path: str, request: Request) -> StreamingResponse:
    path = _visible(request, _logical(artifact_path))
    # NotFound, or DATA_LOSS for a tampered file, before any byte is sent.
    blob = _artifacts(request).open_verified(path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = path.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        blob,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(blob.size),
        },
    )


def list_artifacts(request: Request, path: str = "") -> dict:
    prefix = _logical(path, allow_empty=True)
    if not prefix:
        raise Invalid(
            "list artifacts under an experiment: expected a path like "
            "'<experiment_id>/<run_id>/artifacts'; got an empty path",
            field="path",
        )
    _visible(request, prefix)
    files = []
    for f in _artifacts(request).list(prefix):
        entry: dict[str, object] = {"path": f.path, "is_dir": f.is_dir}
        if not f.is_dir and f.size is not None:
            entry["file_size"] = f.size
        files.append(entry)
    return {"files": files}


for _prefix in _PREFIXES:
    _tag = "" if _prefix.startswith("/api/") else "_ajax"
    artifacts_router.add_api_route(
        f"{_prefix}/{{artifact_path:path}}",
        upload_artifact,
        methods=["PUT"],
        name=f"mlflow_artifacts_upload{_tag}",
    )
    artifacts_router.add_api_route(
        f"{_prefix}/{{artifact_path:path}}",
        download_artifact,
        methods=["GET"],
        name=f"mlflow_artifacts_download{_tag}",
        responses={200: {"content": {"*/*": {}}, "description": "the file's bytes"}},
    )
    artifacts_router.add_api_route(
        _prefix, list_artifacts, methods=["GET"], name=f"mlflow_artifacts_list{_tag}"
    )
