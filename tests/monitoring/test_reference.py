"""A model version's reference data is the registered dataset version it was trained on;
a version without one is a clear NotFound saying how to give a reference."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopstack as ls
from loopstack.errors import Invalid, NotFound
from loopstack.monitoring import reference_table, resolve_model_version, training_set_name
from loopstack.registry import registry


def test_the_reference_is_the_training_dataset_version() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    train = X.assign(target=y)
    dv = ls.register_dataset("iris-train", train)
    with ls.start_run(experiment="ref") as run:
        run.log_input(dv, context="training")
        model = LogisticRegression(max_iter=300).fit(X, y)
        run.log_model(model, name="iris-ref", artifact_path="m", sample_input=X.head(3))
    assert training_set_name("iris-ref/1") == f"iris-train/{dv.version}"
    ref = reference_table("iris-ref/1")
    assert ref.num_rows == len(train) and ref.column_names == list(train.columns)
    assert ref.to_pandas()["target"].tolist() == y.tolist()
    version = registry().get_model_version("iris-ref", 1)
    assert resolve_model_version(version) is version
    assert reference_table(version).equals(ref)


def test_a_version_without_a_training_set_says_how_to_give_one() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with ls.start_run(experiment="ref") as run:
        model = LogisticRegression(max_iter=300).fit(X, y)
        run.log_model(model, name="bare", artifact_path="m", sample_input=X.head(3))
    assert training_set_name("bare/1") is None
    with pytest.raises(NotFound, match=r"bare/1 names no training dataset.*reference="):
        reference_table("bare/1")
    with pytest.raises(NotFound):
        reference_table("bare/7")
    with pytest.raises(Invalid, match="name/version"):
        reference_table("bare")
