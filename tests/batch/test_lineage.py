"""A batch job is a run with lineage to the model version it used and the dataset version
it scored: a registered dataset version (``dataset="name/version"``) is the run's input
itself; an unregistered file is recorded by reference, without being copied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Invalid, NotFound

from .conftest import COLUMNS, frame, write_parquet


def test_a_registered_dataset_version_is_scored_and_is_the_runs_input(
    model_uri: str, tmp_path: Path
) -> None:
    data = frame(500)
    dv = ls.register_dataset("accounts", data)
    result = ls.predict_batch(
        model_uri, None, tmp_path / "out.parquet", dataset="accounts/1", key_columns=["account_id"]
    )
    out = pd.read_parquet(result.output)
    assert out["account_id"].tolist() == data["account_id"].tolist()
    expected = ls.load_model(model_uri).model.predict_proba(data[COLUMNS])
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, rtol=1e-6)

    graph = ls.lineage(f"run:{result.run_id}")
    assert f"dataset_version:accounts/{dv.version}" in graph.upstream
    assert f"model_version:{model_uri.removeprefix('models:/')}" in graph.upstream
    run = ls.get_run(result.run_id)
    assert run.data.params["input"] == "dataset:accounts/1"
    # downstream of the dataset version: the batch run
    assert f"run:{result.run_id}" in ls.lineage("dataset_version:accounts/1").downstream

    # the newest version by name alone; bad names refused before any work
    again = ls.predict_batch(model_uri, None, tmp_path / "o2.parquet", dataset="accounts")
    assert again.rows == 500
    with pytest.raises(NotFound):
        ls.predict_batch(model_uri, None, tmp_path / "o3.parquet", dataset="accounts/7")
    with pytest.raises(Invalid, match="not both"):
        ls.predict_batch(model_uri, "x.parquet", tmp_path / "o3.parquet", dataset="accounts/1")
    with pytest.raises(Invalid, match="pass the input"):
        ls.predict_batch(model_uri, None, tmp_path / "o3.parquet")
    assert not (tmp_path / "o3.parquet").exists()


def test_an_unregistered_input_is_recorded_by_reference(model_uri: str, tmp_path: Path) -> None:
    src = write_parquet(tmp_path / "in.parquet", frame(300), 100)
    before = len(ls.list_datasets())
    result = ls.predict_batch(model_uri, src, tmp_path / "out.parquet")
    run = ls.get_run(result.run_id)
    (logged,) = run.inputs
    assert logged.source == str(src) and logged.source_type == "local"
    assert len(ls.list_datasets()) == before  # nothing copied into the dataset store
    # the same file again: the same digest; a changed file: another
    second = ls.predict_batch(model_uri, src, tmp_path / "out2.parquet")
    (same,) = ls.get_run(second.run_id).inputs
    assert same.digest == logged.digest
    write_parquet(src, frame(300, seed=9), 100)
    third = ls.predict_batch(model_uri, src, tmp_path / "out3.parquet")
    (changed,) = ls.get_run(third.run_id).inputs
    assert changed.digest != logged.digest
