"""``DatasetVersion``: one immutable, content-addressed version of a named dataset."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from loopstack.data._store import DatasetBackend
    from loopstack.tracking._entities import DatasetInput

__all__ = ["DatasetVersion", "validate_dataset_name"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,255}$")


def validate_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise Invalid(
            "a dataset name must start with a letter or digit and contain only "
            f"letters, digits, '_', '-' and '.' (at most 256); got {name!r} instead",
            field="name",
        )
    return name


@dataclass(frozen=True)
class DatasetVersion:
    """A stored version: its schema, profile and digest; the rows are read on demand.

    >>> dv = ls.get_dataset("orders")
    >>> dv.version, dv.num_rows, dv.profile["columns"]["amount"]["mean"]
    >>> df = dv.to_pandas()
    """

    name: str
    version: int
    digest: str  #: sha256 of the canonical Parquet encoding (see ``loopstack.data._digest``)
    artifact_path: str  #: logical path of the Parquet file in the artifact store
    files: dict[str, str]
    schema: dict[str, Any]
    profile: dict[str, Any]
    num_rows: int
    num_columns: int
    source_uri: str
    description: str
    created_by: str
    created_at: int
    project_id: int = 0
    _store: DatasetBackend | None = field(default=None, repr=False, compare=False)

    @property
    def uri(self) -> str:
        """``dataset:<name>/<version>``, the node of this version in the lineage graph."""
        return f"dataset:{self.name}/{self.version}"

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in self.schema.get("columns", [])]

    @property
    def path(self) -> Path:
        """A local Parquet file with this version's rows (verified against the digest)."""
        if self._store is None:
            raise Invalid("this DatasetVersion is not attached to a store", field="dataset")
        return self._store.local_path(self)

    def to_arrow(self) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.path)

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def as_dataset_input(
        self, *, name: str | None = None, context: str | None = None
    ) -> DatasetInput:
        """What a run records when it logs this version as an input."""
        from loopstack.tracking._entities import DatasetInput

        tags = {"mlflow.data.context": context} if context else {}
        tags["loopstack.dataset_version"] = f"{self.name}/{self.version}"
        return DatasetInput(
            name or self.name,
            self.digest,
            "dataset_version",
            self.uri,
            json.dumps(self.schema),
            json.dumps({"num_rows": self.num_rows, "num_columns": self.num_columns}),
            tags,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "artifact_path": self.artifact_path,
            "files": self.files,
            "schema": self.schema,
            "profile": self.profile,
            "num_rows": self.num_rows,
            "num_columns": self.num_columns,
            "source_uri": self.source_uri,
            "description": self.description,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "project_id": self.project_id,
        }
