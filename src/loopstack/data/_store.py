"""``DatasetBackend``: what the dataset verbs need from a store, local (SQL) or remote (REST).

:class:`~loopstack.data._datasets.DatasetStore` talks to the metadata and artifact
stores directly; :class:`~loopstack.data._rest_store.RestDatasetStore` talks to a
loopstack server. ``loopstack.data._client.dataset_store`` picks one by the tracking URI.
"""

from __future__ import annotations

import abc
import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from loopstack.data._entities import DatasetVersion
    from loopstack.data._report import ValidationReport

__all__ = ["DatasetBackend", "register_input"]


class DatasetBackend(abc.ABC):
    """Dataset versions and validation results of one project."""

    actor: str
    project_id: int

    @abc.abstractmethod
    def register(
        self, name: str, data: Any, *, description: str = "", source_uri: str | None = None
    ) -> DatasetVersion:
        """Store ``data`` as a new version of ``name``, or return the version that has it."""

    @abc.abstractmethod
    def get(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """A version by number; ``None`` or ``"latest"`` for the newest."""

    @abc.abstractmethod
    def list(self, name: str | None = None) -> builtins.list[DatasetVersion]:
        """Every version of ``name``, newest first; without a name, each dataset's newest."""

    @abc.abstractmethod
    def local_path(self, dv: DatasetVersion) -> Path:
        """A verified local copy of the version's Parquet file."""

    @abc.abstractmethod
    def save_validation(self, report: ValidationReport, *, run_id: str | None = None) -> str:
        """Store a report (audited); sets and returns its ``result_id``."""

    @abc.abstractmethod
    def get_validation(self, result_id: str) -> ValidationReport:
        """A stored report by its ``result_id``."""

    @abc.abstractmethod
    def list_validations(
        self, *, dataset: str | None = None, run_id: str | None = None
    ) -> builtins.list[ValidationReport]:
        """Stored results, newest first, optionally for one dataset name or run."""


def register_input(
    name: str, data: Any, description: Any, source_uri: str | None
) -> tuple[str, pa.Table, str | None]:
    """What every store checks before registering: the name, the description, and ``data``
    as a canonical table of at least one column; ``source_uri`` defaults to a given path."""
    from loopstack.data._digest import canonical_table
    from loopstack.data._entities import validate_dataset_name
    from loopstack.data._sources import to_arrow
    from loopstack.errors import Invalid

    name = validate_dataset_name(name)
    if not isinstance(description, str):
        raise Invalid(
            f"description must be text; got {type(description).__name__}", field="description"
        )
    if source_uri is None and isinstance(data, str | Path):
        source_uri = str(Path(data).resolve())
    table = canonical_table(to_arrow(data))
    if table.num_columns == 0:
        raise Invalid("expected a table with at least one column; got none", field="data")
    return name, table, source_uri
