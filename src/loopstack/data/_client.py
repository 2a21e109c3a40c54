"""The user-facing verbs over the dataset store the configuration names."""

from __future__ import annotations

from typing import Any

from loopstack.data._datasets import DatasetStore
from loopstack.data._entities import DatasetVersion
from loopstack.data._report import ValidationReport
from loopstack.data._store import DatasetBackend

__all__ = [
    "dataset_store",
    "get_dataset",
    "get_validation_result",
    "list_datasets",
    "register_dataset",
]


def dataset_store(*, actor: str | None = None, project_id: int | None = None) -> DatasetBackend:
    """The dataset store the configuration names: a server's REST API for an http(s)
    tracking URI, else the metadata and artifact stores directly.

    Locally the project is ``settings().project`` (or ``project_id`` when given);
    through a server it is the one the server places the request in.
    """
    from loopstack.config import settings
    from loopstack.store.remote import HttpClient, local_config, server_url

    config = settings()
    cache_dir = config.home / "cache" / "datasets"
    if server_url(config) is not None:
        from loopstack.data._rest_store import RestDatasetStore

        return RestDatasetStore(
            HttpClient.from_settings(config), actor=actor or config.actor, cache_dir=cache_dir
        )
    from loopstack.auth import project_in_use
    from loopstack.store import open_stores

    stores = open_stores(local_config(config))
    if project_id is None:
        project_id = project_in_use(stores.db, config)
    return DatasetStore(
        stores, actor=actor or config.actor, project_id=project_id, cache_dir=cache_dir
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
