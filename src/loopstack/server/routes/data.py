"""Datasets and validation results under /api/v1: what ``RestDatasetStore`` speaks."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from loopstack.data import DatasetStore, ValidationReport
from loopstack.errors import Invalid, excerpt
from loopstack.server._security import authorize, principal_of, project_of

router = APIRouter(prefix="/api/v1", tags=["data"], dependencies=[Depends(authorize)])


def dataset_store(request: Request) -> DatasetStore:
    """The dataset store of the caller's project, acting as the caller."""
    config = request.app.state.config
    return DatasetStore(
        request.app.state.stores,
        actor=principal_of(request).user,
        project_id=project_of(request),
        cache_dir=config.home / "cache" / "datasets",
    )


def _json(content: Any) -> Response:
    """JSON as the local store keeps it (NaN stays NaN: a check may observe one)."""
    return Response(json.dumps(content, default=str), media_type="application/json")


def _read_parquet(path: str, got: str, size: int, digest: str | None) -> Any:
    """The Parquet table of the upload spooled at ``path`` (sha256 ``got``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if digest is not None and got != digest:
        raise Invalid(
            f"the uploaded Parquet file has sha256 {got}; the client sent digest {digest} "
            "(the upload was damaged on the way)",
            field="digest",
        )
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise Invalid(
            f"expected the body to be a Parquet file; got {size} bytes that are not: "
            f"{excerpt(str(exc))}",
            field="data",
        ) from exc


# -- datasets -------------------------------------------------------------------------
@router.get("/datasets", name="datasets_list")
def list_datasets(
    name: str | None = None, store: DatasetStore = Depends(dataset_store)
) -> Response:
    return _json({"datasets": [dv.to_dict() for dv in store.list(name)]})


@router.get("/datasets/{name}/versions/{version}", name="datasets_get")
def get_dataset(name: str, version: str, store: DatasetStore = Depends(dataset_store)) -> Response:
    return _json(store.get(name, version).to_dict())


@router.post("/datasets/{name}/versions", name="datasets_register")
async def register_dataset(
    name: str,
    request: Request,
    digest: str | None = None,
    description: str = "",
    source_uri: str | None = None,
    store: DatasetStore = Depends(dataset_store),
) -> Response:
    # Spooled to disk as it comes, hashed on the way: the file is never whole in memory.
    sha, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(prefix="loopstack-dataset-")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                sha.update(chunk)
                size += len(chunk)
                out.write(chunk)
        table = await run_in_threadpool(_read_parquet, tmp, sha.hexdigest(), size, digest)
    finally:
        os.unlink(tmp)
    dv = await run_in_threadpool(
        store.register, name, table, description=description, source_uri=source_uri or ""
    )
    return _json(dv.to_dict())


@router.get("/datasets/{name}/versions/{version}/data", name="datasets_download")
def download_dataset(
    name: str, version: str, store: DatasetStore = Depends(dataset_store)
) -> StreamingResponse:
    dv = store.get(name, version)
    chunks = store.stores.artifacts.iter_bytes(dv.artifact_path)
    return StreamingResponse(chunks, media_type="application/vnd.apache.parquet")


# -- validation results ---------------------------------------------------------------
@router.post("/validations", name="validations_create")
async def create_validation(
    request: Request, store: DatasetStore = Depends(dataset_store)
) -> dict[str, Any]:
    # parsed here, not by pydantic: the body may hold NaN (a check may observe one)
    raw = await request.body()
    try:
        body = json.loads(raw)
        report = ValidationReport.from_dict(body["report"])
        run_id = body.get("run_id")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Invalid(
            "expected {'report': {'suite', 'results', 'num_rows', ...}, 'run_id': ...}; "
            f"got {excerpt(raw)}: {excerpt(exc)}",
            field="report",
        ) from exc
    if run_id is not None and not isinstance(run_id, str):
        raise Invalid(f"run_id must be text; got {run_id!r}", field="run_id")
    result_id = await run_in_threadpool(store.save_validation, report, run_id=run_id)
    return {"result_id": result_id, "created_at": report.created_at}


@router.get("/validations", name="validations_list")
def list_validations(
    dataset: str | None = None,
    run_id: str | None = None,
    store: DatasetStore = Depends(dataset_store),
) -> Response:
    reports = store.list_validations(dataset=dataset, run_id=run_id)
    return _json({"validations": [r.to_wire() for r in reports]})


@router.get("/validations/{result_id}", name="validations_get")
def get_validation(result_id: str, store: DatasetStore = Depends(dataset_store)) -> Response:
    return _json(store.get_validation(result_id).to_wire())
