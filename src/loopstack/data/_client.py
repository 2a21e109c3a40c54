"""The user-facing verbs over the dataset store the configuration names."""

from __future__ import annotations

from typing import Any

from loopstack.data._datasets import DatasetStore
from loopstack.data._entities import DatasetVersion
from loopstack.data._report import ValidationReport

__all__ = [
    "dataset_store",
    "get_dataset",
    "get_validation_result",
    "list_datasets",
    "register_dataset",
]


def dataset_store(*, actor: str | None = None, project_id: int | None = None) -> DatasetStore:
    """The dataset store over the configured metadata and artifact stores."""
    from dataclasses import replace

    from loopstack.auth import project_in_use
    from loopstack.config import settings
    from loopstack.errors import Invalid
    from loopstack.store import open_stores

    config = settings()
    if config.tracking_uri and config.tracking_uri.startswith(("http://", "https://")):
        raise Invalid(
            "datasets talk to the metadata store directly for now; unset "
            "LOOPSTACK_TRACKING_URI and set LOOPSTACK_DB_URL",
            field="tracking_uri",
        )
    if config.tracking_uri:  # a database URL given as the tracking URI
        config = replace(config, db_url=config.tracking_uri)
    stores = open_stores(config)
    return DatasetStore(
        stores,
        actor=actor or config.actor,
        project_id=project_in_use(stores.db, config) if project_id is None else project_id,
        cache_dir=config.home / "cache" / "datasets",
    )


def register_dataset(
    name: str, data: Any, *, description: str = "", source_uri: str | None = None
) -> DatasetVersion:
    """Store a DataFrame, Arrow table, or Parquet/CSV path as an immutable dataset version.

    Identical content is deduplicated: registering it again returns the existing version.

    >>> dv = ls.register_dataset("orders", df, description="orders of May")
    >>> dv.version, dv.digest[:12], dv.profile["columns"]["amount"]["p50"]
    """
    return dataset_store().register(name, data, description=description, source_uri=source_uri)


def get_dataset(name: str, version: int | str | None = None) -> DatasetVersion:
    """A dataset version by number, or the newest (``None`` or ``"latest"``)."""
    return dataset_store().get(name, version)


def list_datasets(name: str | None = None) -> list[DatasetVersion]:
    """The newest version of every dataset; with ``name``, every version of it, newest first."""
    return dataset_store().list(name)


def get_validation_result(result_id: str) -> ValidationReport:
    """A stored validation report by its ``result_id``."""
    return dataset_store().get_validation(result_id)
