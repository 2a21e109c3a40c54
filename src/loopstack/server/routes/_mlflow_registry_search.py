"""The MLflow registry routes' view of the registry's search (``registry._search``).

The grammar lives in the registry; this module only translates: MLflow's ``source_path``
is the URI the MLflow client is shown for a version's source.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopstack.registry import ModelVersion
from loopstack.registry._search import (
    MODEL_FIELDS,
    PROMPT_TAG,
    VERSION_FIELDS,
    equality,
    page,
    search_registered_models,
)
from loopstack.registry._search import parse_registry_filter as parse_filter
from loopstack.registry._search import search_model_versions as _search_model_versions
from loopstack.server.routes._mlflow_registry_render import source_uri
from loopstack.tracking._filter import Clause

__all__ = [
    "MODEL_FIELDS",
    "PROMPT_TAG",
    "VERSION_FIELDS",
    "Clause",
    "equality",
    "page",
    "parse_filter",
    "search_model_versions",
    "search_registered_models",
]


def search_model_versions(
    versions: list[ModelVersion], clauses: list[Clause], order_by: Sequence[str]
) -> list[ModelVersion]:
    """Matching versions, with ``source_path`` compared as the MLflow client sees it."""
    return _search_model_versions(versions, clauses, order_by, source_path=source_uri)
