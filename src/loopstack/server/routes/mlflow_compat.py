"""MLflow REST API (placeholder until the compat routes land)."""

from fastapi import APIRouter, Depends

from loopstack.server._security import authorize

router = APIRouter(dependencies=[Depends(authorize)])
artifacts_router = APIRouter(dependencies=[Depends(authorize)])
