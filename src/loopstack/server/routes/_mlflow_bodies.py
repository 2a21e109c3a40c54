"""Request bodies of MLflow's tracking API (the JSON form of service.proto's messages).

Unknown fields are ignored, as an MLflow server does: newer clients send fields
(``model_id``, ``dataset_digest``, ...) that an older server does not read.
Wrong types and missing required fields fail validation, which the app answers
with ``INVALID_PARAMETER_VALUE`` (400).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from loopstack.errors import Invalid, excerpt
from loopstack.server._boundary import WholeNumber

__all__ = [
    "BatchBody",
    "CreateExperimentBody",
    "CreateRunBody",
    "DatasetInputBody",
    "ExperimentIdBody",
    "ExperimentTagBody",
    "KeyValue",
    "LogInputsBody",
    "LogOutputsBody",
    "LogMetricBody",
    "MetricBody",
    "ModelRefBody",
    "ParamBody",
    "RunIdBody",
    "RunTagBody",
    "SearchExperimentsBody",
    "SearchLoggedModelsBody",
    "SearchRunsBody",
    "UpdateExperimentBody",
    "UpdateRunBody",
    "metric_value",
]


#: protobuf's int64, bounded so an out-of-range number is a 400, not a database error
Int64 = Annotated[WholeNumber, Field(ge=-(2**63), le=2**63 - 1)]
# Column widths of the metadata schema: longer values are refused here with a 400, where
# PostgreSQL would otherwise fail the insert (SQLite does not enforce them).
_RUN_NAME, _USER_ID = 250, 256
_DATASET_NAME, _DATASET_DIGEST, _DATASET_SOURCE_TYPE = 500, 64, 64


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeyValue(_Body):
    key: str
    value: str


class _RunRef(_Body):
    """``run_id``, or the older ``run_uuid`` that MLflow clients still send beside it."""

    run_id: str | None = None
    run_uuid: str | None = None

    def the_run_id(self) -> str:
        rid = self.run_id or self.run_uuid
        if not rid:
            raise Invalid("a run_id is required; got none", field="run_id")
        return rid


class RunIdBody(_RunRef):
    pass


class ExperimentIdBody(_Body):
    experiment_id: str


class CreateExperimentBody(_Body):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateExperimentBody(_Body):
    experiment_id: str
    new_name: str


class ExperimentTagBody(_Body):
    experiment_id: str
    key: str
    value: str | None = None


class SearchExperimentsBody(_Body):
    max_results: WholeNumber = 1000
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    view_type: str | int | None = None


class CreateRunBody(_Body):
    experiment_id: str = "0"
    user_id: str | None = Field(default=None, max_length=_USER_ID)
    run_name: str | None = Field(default=None, max_length=_RUN_NAME)
    start_time: Int64 | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRunBody(_RunRef):
    status: str | int | None = None
    end_time: Int64 | None = None
    run_name: str | None = Field(default=None, max_length=_RUN_NAME)


class MetricBody(_Body):
    key: str
    value: Any  # converted by metric_value, so the error names the metric
    timestamp: Int64
    step: Int64 = 0
    # MLflow 3: a point measured on a logged model (and maybe a dataset)
    model_id: str | None = None
    dataset_name: str | None = Field(default=None, max_length=_DATASET_NAME)
    dataset_digest: str | None = Field(default=None, max_length=_DATASET_DIGEST)


class LogMetricBody(_RunRef, MetricBody):
    pass


class ParamBody(_RunRef, KeyValue):
    pass


class RunTagBody(_RunRef):
    key: str
    value: str | None = None


class BatchBody(_RunRef):
    metrics: list[MetricBody] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class DatasetBody(_Body):
    name: str = Field(max_length=_DATASET_NAME)
    digest: str = Field(max_length=_DATASET_DIGEST)
    source_type: str = Field(max_length=_DATASET_SOURCE_TYPE)
    source: str
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None


class DatasetInputBody(_Body):
    tags: list[KeyValue] = Field(default_factory=list)
    dataset: DatasetBody


class ModelRefBody(_Body):
    """A logged model a run used (``ModelInput``) or produced at a step (``ModelOutput``)."""

    model_id: str
    step: Int64 = 0


class LogInputsBody(_RunRef):
    datasets: list[DatasetInputBody] = Field(default_factory=list)
    models: list[ModelRefBody] = Field(default_factory=list)


class LogOutputsBody(_RunRef):
    models: list[ModelRefBody]


class SearchRunsBody(_Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    run_view_type: str | int | None = None
    max_results: WholeNumber = 1000
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class DatasetFilterBody(_Body):
    dataset_name: str = ""
    dataset_digest: str | None = None


class OrderByBody(_Body):
    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class SearchLoggedModelsBody(_Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    datasets: list[DatasetFilterBody] = Field(default_factory=list)
    max_results: WholeNumber | None = None
    order_by: list[OrderByBody] = Field(default_factory=list)
    page_token: str | None = None


_NON_FINITE = {
    "nan": math.nan,
    "infinity": math.inf,
    "-infinity": -math.inf,
    "inf": math.inf,
    "-inf": -math.inf,
}


def metric_value(key: str, value: Any) -> float:
    """A metric value as protobuf's JSON mapping allows it: a number or a numeric string.

    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (what the MLflow client sends for them)
    come through as the floats they name, and are stored as such.
    """
    if isinstance(value, bool) or value is None:
        raise Invalid(
            f"metric {key!r} must be a number; got {excerpt(value)} instead", field=f"metrics.{key}"
        )
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        special = _NON_FINITE.get(value.strip().lower())
        if special is not None:
            return special
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise Invalid(
        f"metric {key!r} must be a number; got {excerpt(value)} instead", field=f"metrics.{key}"
    )
