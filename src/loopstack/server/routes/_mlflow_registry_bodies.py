"""Request bodies of MLflow's model registry API (the JSON form of model_registry.proto).

As on the tracking side, unknown fields are ignored (newer clients send fields such
as ``deployment_job_id`` that loopstack does not keep), and a wrong type or a missing
required field answers ``INVALID_PARAMETER_VALUE``. Version numbers travel as strings
in MLflow's JSON; a bare number is accepted too, and the registry refuses anything
that is not an integer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from loopstack.server.routes._mlflow_bodies import KeyValue

__all__ = [
    "AliasBody",
    "CreateModelVersionBody",
    "CreateRegisteredModelBody",
    "DeleteAliasBody",
    "LatestVersionsBody",
    "ModelNameBody",
    "ModelTagBody",
    "RenameRegisteredModelBody",
    "TransitionStageBody",
    "UpdateModelVersionBody",
    "UpdateRegisteredModelBody",
    "VersionBody",
    "VersionTagBody",
]

Version = str | int


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ModelNameBody(_Body):
    name: str


class CreateRegisteredModelBody(ModelNameBody):
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None


class RenameRegisteredModelBody(ModelNameBody):
    new_name: str


class UpdateRegisteredModelBody(ModelNameBody):
    description: str | None = None


class ModelTagBody(ModelNameBody):
    key: str
    value: str | None = None


class LatestVersionsBody(ModelNameBody):
    stages: list[str] = Field(default_factory=list)


class AliasBody(ModelNameBody):
    alias: str
    version: Version


class DeleteAliasBody(ModelNameBody):
    alias: str


class CreateModelVersionBody(ModelNameBody):
    source: str
    run_id: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)
    run_link: str | None = None
    description: str | None = None
    model_id: str | None = None


class VersionBody(ModelNameBody):
    version: Version


class UpdateModelVersionBody(VersionBody):
    description: str | None = None


class TransitionStageBody(VersionBody):
    stage: str = ""
    archive_existing_versions: bool = False


class VersionTagBody(VersionBody):
    key: str
    value: str | None = None
