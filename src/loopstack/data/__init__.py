"""Datasets and data validation.

Datasets are immutable, content-addressed versions stored as Parquet with a schema and
a per-column profile; suites of checks validate any table in one vectorised DuckDB pass
and their reports gate pipelines and back promotions.

>>> dv = ls.register_dataset("orders", df)
>>> suite = ls.infer_suite(dv)
>>> suite.validate(new_df).raise_for_failures()
"""

from loopstack.data._checks import CHECKS, Check
from loopstack.data._client import (
    dataset_store,
    get_dataset,
    get_validation_result,
    list_datasets,
    register_dataset,
)
from loopstack.data._datasets import DatasetStore
from loopstack.data._drift import psi
from loopstack.data._entities import DatasetVersion
from loopstack.data._infer import infer_suite
from loopstack.data._profile import profile_table
from loopstack.data._report import ValidationReport
from loopstack.data._result import CheckResult
from loopstack.data._suite import Suite
from loopstack.errors import ValidationFailed

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "DatasetStore",
    "DatasetVersion",
    "Suite",
    "ValidationFailed",
    "ValidationReport",
    "dataset_store",
    "get_dataset",
    "get_validation_result",
    "infer_suite",
    "list_datasets",
    "profile_table",
    "psi",
    "register_dataset",
]
