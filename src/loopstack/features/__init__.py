"""The feature store: definitions, point-in-time training sets, online serving.

>>> from loopstack.features import Entity, FeatureStore, FeatureView, Field
"""

from loopstack.features._definitions import (
    Entity,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
)
from loopstack.features._service import FeatureService
from loopstack.features._sources import DataFrameSource, FileSource, Source, SqlSource
from loopstack.features._store import FeatureStore
from loopstack.features._types import DTYPES, normalize_dtype

__all__ = [
    "DTYPES",
    "DataFrameSource",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "OnDemandFeatureView",
    "RequestSource",
    "Source",
    "SqlSource",
    "normalize_dtype",
]
