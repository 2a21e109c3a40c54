"""The fluent tracking API against each metadata backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import loopstack as ls
from loopstack.tracking import TrackingClient

pytestmark = pytest.mark.usefixtures("tracking_backend")


def test_run_context_manager_records_everything() -> None:
    with ls.start_run(
        experiment="churn", run_name="gbm-1", params={"lr": 0.1}, tags={"team": "risk"}
    ) as run:
        for step in range(5):
            ls.log_metric("loss", 1.0 / (step + 1), step=step)
        ls.log_metrics({"auc": 0.91, "f1": 0.8}, step=4)
        ls.log_params({"model": "gbm", "depth": 6})
        ls.set_tag("stage", "dev")
    got = ls.get_run(run.run_id)
    assert got.status == "FINISHED" and got.end_time is not None
    assert got.run_name == "gbm-1"
    assert got.params == {"lr": "0.1", "model": "gbm", "depth": "6"}
    assert got.metrics == {"loss": pytest.approx(0.2), "auc": 0.91, "f1": 0.8}
    assert got.tags["team"] == "risk" and got.tags["stage"] == "dev"
    history = TrackingClient().get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == [1.0, 0.5, pytest.approx(1 / 3), 0.25, 0.2]


def test_exception_marks_run_failed_and_interrupt_killed() -> None:
    with pytest.raises(RuntimeError), ls.start_run(experiment="e") as failed:
        ls.log_metric("x", 1.0)
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), ls.start_run(experiment="e") as killed:
        raise KeyboardInterrupt
    assert ls.get_run(failed.run_id).status == "FAILED"
    assert ls.get_run(failed.run_id).metrics == {"x": 1.0}  # flushed before failing
    assert ls.get_run(killed.run_id).status == "KILLED"


def test_environment_is_captured_in_tags_not_params() -> None:
    with ls.start_run(experiment="env") as run:
        pass
    got = ls.get_run(run.run_id)
    assert got.params == {}
    for key in ("loopstack.python", "loopstack.host", "loopstack.command", "loopstack.packages"):
        assert got.tags[key], key
    assert "pandas==" in got.tags["loopstack.packages"]


def test_nested_runs_link_to_parent_and_unnested_second_run_is_refused() -> None:
    with ls.start_run(experiment="sweep") as parent:
        with pytest.raises(ls.Conflict, match="already active"):
            ls.start_run(experiment="sweep")
        with ls.start_run(nested=True, run_name="child") as child:
            assert ls.active_run() is child
        assert ls.active_run() is parent
    assert ls.get_run(child.run_id).parent_run_id == parent.run_id
    assert ls.get_run(child.run_id).experiment_id == parent.experiment_id
    assert ls.active_run() is None


def test_log_input_records_content_hash(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    with ls.start_run(experiment="data") as run:
        digest = ls.log_input(df, name="train", context="training")
        same = ls.log_input(df.copy(), name="train")
        changed = ls.log_input(df.assign(a=[1, 2, 4]), name="train-v2")
    assert digest == same and digest != changed
    inputs = {d.name: d for d in ls.get_run(run.run_id).inputs}
    assert inputs["train"].digest == digest
    assert inputs["train"].tags == {"mlflow.data.context": "training"}
    assert '"num_rows": 3' in (inputs["train"].profile or "")


def test_artifacts_file_and_directory(tmp_path: Path) -> None:
    src = tmp_path / "out"
    (src / "plots").mkdir(parents=True)
    (src / "report.txt").write_text("hello")
    (src / "plots" / "roc.csv").write_text("0,1\n")
    with ls.start_run(experiment="art") as run:
        ls.log_artifact(src / "report.txt")
        ls.log_artifact(src, "bundle")
        ls.log_artifacts(src)
    client = TrackingClient()
    names = sorted(f.path for f in client.list_artifacts(run.run_id))
    assert names == ["bundle", "plots", "report.txt"]
    dest = client.download_artifacts(run.run_id, "bundle", tmp_path / "dl")
    assert (dest / "report.txt").read_text() == "hello"
    assert (dest / "plots" / "roc.csv").read_text() == "0,1\n"


def test_search_runs_filter_and_order() -> None:
    for model, auc in [("gbm", 0.95), ("gbm", 0.85), ("lin", 0.92), ("gbm", 0.97)]:
        with ls.start_run(experiment="search", params={"model": model}):
            ls.log_metric("auc", auc)
    df = ls.search_runs(
        "search", filter="metrics.auc > 0.9 and params.model = 'gbm'", order_by=["metrics.auc DESC"]
    )
    assert isinstance(df, pd.DataFrame)
    assert list(df["metrics.auc"]) == [0.97, 0.95]
    assert list(ls.search_runs("search", order_by=["metrics.auc ASC"])["metrics.auc"]) == [
        0.85,
        0.92,
        0.95,
        0.97,
    ]
    assert len(ls.search_runs("search", filter="params.model LIKE 'g%'", max_results=2)) == 2
    assert len(ls.search_runs("search", filter="attributes.status = 'FINISHED'")) == 4
    assert ls.search_runs("search", filter="metrics.auc > 0.99").empty


def test_search_runs_paginates_past_one_page() -> None:
    client = TrackingClient()
    eid = client.set_experiment("many")
    ids = {client.create_run(eid).run_id for _ in range(25)}
    runs, token = client.store.search_runs([eid], max_results=10)
    seen = {r.run_id for r in runs}
    while token:
        page, token = client.store.search_runs([eid], max_results=10, page_token=token)
        seen |= {r.run_id for r in page}
    assert seen == ids


def test_compare_runs_side_by_side() -> None:
    with ls.start_run(experiment="cmp", params={"lr": 0.1}) as a:
        ls.log_metric("auc", 0.9)
    with ls.start_run(experiment="cmp", params={"lr": 0.2}) as b:
        ls.log_metric("auc", 0.8)
    table = ls.compare_runs([a.run_id, b.run_id])
    assert table.loc["params.lr", a.run_id] == "0.1"
    assert table.loc["metrics.auc", b.run_id] == 0.8


def test_explicit_flush_writes_buffered_points() -> None:
    with ls.start_run(experiment="flush") as run:
        for i in range(10):
            ls.log_metric("m", float(i), step=i)
        assert ls.flush() == 10
        assert len(TrackingClient().get_metric_history(run.run_id, "m")) == 10
        assert ls.flush() == 0


def test_background_flush_happens_within_about_a_second() -> None:
    import time

    with ls.start_run(experiment="bg") as run:
        ls.log_metric("m", 1.0)
        client = TrackingClient()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not client.get_metric_history(run.run_id, "m"):
            time.sleep(0.05)
        assert len(client.get_metric_history(run.run_id, "m")) == 1


def test_log_input_accepts_arrays_and_arrow_tables_and_refuses_other_things() -> None:
    import numpy as np
    import pyarrow as pa

    with ls.start_run(experiment="kinds") as run:
        ls.log_input(np.arange(6.0).reshape(3, 2), name="array")
        ls.log_input(pa.table({"a": [1, 2]}), name="arrow")
        with pytest.raises(ls.Invalid, match="expected a pandas DataFrame.*got dict"):
            ls.log_input({"a": 1})
    kinds = {d.name: d.source_type for d in ls.get_run(run.run_id).inputs}
    assert kinds == {"array": "ndarray", "arrow": "arrow"}


def test_credentials_in_params_and_tags_are_redacted_before_storage() -> None:
    with ls.start_run(
        experiment="secrets",
        params={
            "db_password": "hunter2",
            "lr": 0.1,
            "max_new_tokens": 256,
            "db_url": "postgresql://ml:s3cret@db:5432/x",
        },
        tags={
            "aws_key_id": "AKIAIOSFODNN7EXAMPLE",
            "api_token": "abc123",
            "creds_ref": "env:DB_PASSWORD",
        },
    ) as run:
        ls.log_param("tokenizer", "bert-base")
    got = ls.get_run(run.run_id)
    assert got.params["db_password"] == "***REDACTED***"
    assert got.params["db_url"] == "postgresql://ml:***REDACTED***@db:5432/x"
    assert got.params["lr"] == "0.1" and got.params["max_new_tokens"] == "256"
    assert got.params["tokenizer"] == "bert-base"
    assert got.tags["aws_key_id"] == "***REDACTED***"
    assert got.tags["api_token"] == "***REDACTED***"
    assert got.tags["creds_ref"] == "env:DB_PASSWORD"  # a reference, not a value


def test_start_run_in_a_deleted_experiment_says_to_restore_it() -> None:
    with ls.start_run(experiment="short-lived") as first:  # its id is remembered
        pass
    client = TrackingClient()
    client.store.delete_experiment(first.experiment_id)
    with (
        pytest.raises(ls.Conflict, match="is deleted; restore it"),
        ls.start_run(experiment="short-lived"),
    ):
        pass


def test_a_run_without_an_experiment_goes_to_its_projects_default() -> None:
    from loopstack import auth
    from loopstack.store import open_stores

    auth.create_project(open_stores().db, "fraud", actor="me")
    ls.set_project("fraud")
    try:
        with ls.start_run() as run:
            ls.log_metric("a", 1.0)
        exp = ls.TrackingClient().get_experiment(run.info.experiment_id)
        assert exp.name == "Default" and exp.experiment_id != "0"
        assert ls.search_runs()["run_id"].tolist() == [run.info.run_id]
    finally:
        ls.set_project(None)
    with ls.start_run() as home:
        pass
    assert home.info.experiment_id == "0"
    assert ls.search_runs()["run_id"].tolist() == [home.info.run_id]
