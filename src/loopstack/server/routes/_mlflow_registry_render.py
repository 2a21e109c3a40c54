"""Loopstack registry entities as the JSON shapes of MLflow's model_registry.proto.

A version's source that is a loopstack logical artifact path (``1/<run>/artifacts/model``)
is rendered as an ``mlflow-artifacts:`` URI, so the client downloads ``models:/`` URIs
through this server's proxy; a source that already carries a scheme (``s3://...``,
``models:/...``) is an external location and is shown as it was given.
"""

from __future__ import annotations

import re
from typing import Any

from loopstack.registry import ModelVersion, RegisteredModel
from loopstack.server.routes._mlflow_render import artifact_uri, key_values

__all__ = ["model_version", "registered_model", "source_uri"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
#: MLflow's deprecated stages; every loopstack version is in none of them (aliases replace them)
NO_STAGE = "None"


def source_uri(source: str) -> str:
    """Where the MLflow client finds a version's files."""
    return source if _SCHEME.match(source) else artifact_uri(source)


#: where loopstack keeps the logged model a version came from (rendered as ``model_id``)
MODEL_ID_TAG = "loopstack.mlflow.model_id"


def model_version(v: ModelVersion) -> dict[str, Any]:
    """A ``ModelVersion`` message; ``model_id`` for a version made from a logged model."""
    out = _model_version(v)
    model_id = v.tags.get(MODEL_ID_TAG)
    if model_id:
        out["model_id"] = model_id
        out["tags"] = [t for t in out["tags"] if t["key"] != MODEL_ID_TAG]
    return out


def _model_version(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": v.created_at,
        "last_updated_timestamp": v.updated_at,
        "user_id": v.created_by,
        "current_stage": NO_STAGE,
        "description": v.description,
        "source": source_uri(v.source),
        "run_id": v.run_id or "",
        "status": v.status,
        "tags": key_values(v.tags),
        "run_link": "",
        "aliases": list(v.aliases),
    }


def registered_model(m: RegisteredModel, latest: ModelVersion | None = None) -> dict[str, Any]:
    """``latest`` is the newest version: MLflow lists the newest per stage, and all are "None"."""
    return {
        "name": m.name,
        "creation_timestamp": m.created_at,
        "last_updated_timestamp": m.updated_at,
        "user_id": m.created_by,
        "description": m.description,
        "latest_versions": [model_version(latest)] if latest is not None else [],
        "tags": key_values(m.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(m.aliases.items())],
    }
