"""A model version's reference data: the training dataset version it was fit on.

``log_model`` in a run that took a registered dataset version as its ``training``
input (``ls.log_input(dataset_version, context="training")``, or
``get_historical_features(..., register_as=NAME)``) tags the model version with
``loopstack.training_set`` = ``name/version``; older versions are looked up through
their run's inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopstack.errors import Invalid, NotFound, excerpt

if TYPE_CHECKING:
    import pyarrow as pa

    from loopstack.data import DatasetVersion
    from loopstack.registry import ModelVersion

__all__ = ["reference_dataset", "reference_table", "resolve_model_version", "training_set_name"]

_HOW = (
    "log the model in the run that took its training data as an input "
    "(ls.log_input(ls.register_dataset(name, df), context='training'), or "
    "get_historical_features(..., register_as=NAME)), or give the reference yourself "
    "(reference= a DataFrame, an Arrow table or a dataset version)"
)


def resolve_model_version(model_version: ModelVersion | str) -> ModelVersion:
    """A ``ModelVersion`` itself, or the registered one ``"name/version"`` names."""
    from loopstack.registry import ModelVersion, registry

    if isinstance(model_version, ModelVersion):
        return model_version
    if isinstance(model_version, str):
        name, _, number = model_version.rpartition("/")
        if name and number.isdigit():
            return registry().get_model_version(name, int(number))
    raise Invalid(
        "expected a ModelVersion or 'name/version' (such as 'churn/3'); "
        f"got {excerpt(model_version)}",
        field="model_version",
    )


def training_set_name(model_version: ModelVersion | str) -> str | None:
    """The training dataset version (``name/version``) a model version was trained on,
    or None when it names none."""
    from loopstack.registry import TRAINING_SET_TAG, training_set_of

    version = resolve_model_version(model_version)
    tagged = version.tags.get(TRAINING_SET_TAG)
    if tagged:
        return str(tagged)
    if not version.run_id:
        return None
    from loopstack.tracking import TrackingClient

    try:
        run = TrackingClient().get_run(version.run_id)
    except NotFound:
        return None
    return training_set_of(run)


def reference_dataset(model_version: ModelVersion | str) -> DatasetVersion:
    """The training ``DatasetVersion`` of a model version; ``NotFound`` naming the version
    and how to give a reference when it has none (or it is gone)."""
    from loopstack.data import get_dataset

    version = resolve_model_version(model_version)
    label = f"{version.name}/{version.version}"
    found = training_set_name(version)
    if found is None:
        raise NotFound(
            f"model version {label} names no training dataset to use as the reference: {_HOW}",
            field="reference",
        )
    name, _, number = found.rpartition("/")
    try:
        return get_dataset(name, number)
    except NotFound as exc:
        raise NotFound(
            f"model version {label} was trained on dataset {found}, which is not in the "
            f"store ({exc}); give the reference yourself (reference= a DataFrame, an Arrow "
            "table or a dataset version)",
            field="reference",
        ) from None


def reference_table(model_version: ModelVersion | str) -> pa.Table:
    """The rows a model version was trained on, as an Arrow table (see ``reference_dataset``).

    >>> ref = reference_table("churn/3")   # doctest: +SKIP
    """
    return reference_dataset(model_version).to_arrow()
