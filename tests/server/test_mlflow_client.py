"""The real ``mlflow`` client against a live loopstack server, both ways round.

What the MLflow client logs, loopstack's own API reads back exactly, and what
loopstack logs, the MLflow client reads back exactly: params, metric histories
(values, steps, timestamps), tags, dataset inputs and artifact bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric as MlflowMetric  # noqa: E402
from mlflow.entities import Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from loopstack.tracking import TrackingClient  # noqa: E402

pytestmark = [
    pytest.mark.mlflow,
    # mlflow.data's schema inference warns about integer columns from mlflow.types; and
    # mlflow's own modules may warn on import under newer dependency versions.
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
]

T0 = 1_700_000_000_000


@pytest.fixture
def server(mlflow_uri: str) -> str:
    """The live server, as the MLflow client's tracking URI (see tests/server/conftest.py)."""
    return mlflow_uri


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _artifact_tree(tmp_path: Path) -> tuple[Path, Path]:
    note = tmp_path / "src" / "notes.txt"
    note.parent.mkdir(parents=True)
    note.write_text("hello loopstack\n")
    plots = tmp_path / "src" / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    (plots / "sub" / "deep.bin").write_bytes(bytes(range(256)) * 3)
    return note, plots


def test_mlflow_logs_and_loopstack_reads_the_same_run(server: str, tmp_path: Path) -> None:
    import pandas as pd

    note, plots = _artifact_tree(tmp_path)
    frame = pd.DataFrame({"x": [1.5, 2.5, 3.5], "y": [0.0, 1.0, 0.0]})
    exp_id = mlflow.set_experiment("fraud").experiment_id
    client = MlflowClient()
    with mlflow.start_run(run_name="baseline") as active:
        rid = active.info.run_id
        mlflow.log_param("lr", 0.1)
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step, timestamp=T0 + step)
        client.log_batch(
            rid,
            metrics=[MlflowMetric("acc", 0.8, T0 + 10, 0), MlflowMetric("acc", 0.875, T0 + 20, 1)],
            params=[Param("depth", "6")],
            tags=[RunTag("team", "risk")],
        )
        mlflow.set_tag("stage", "dev")
        mlflow.set_tag("scratch", "gone soon")
        client.delete_tag(rid, "scratch")
        mlflow.log_artifact(str(note))
        mlflow.log_artifacts(str(plots), artifact_path="plots")
        dataset = mlflow.data.from_pandas(frame, name="train")
        mlflow.log_input(dataset, context="training")

    # -- the MLflow client's own view ----------------------------------------------------
    got = client.get_run(rid)
    assert got.info.status == "FINISHED" and got.info.end_time >= got.info.start_time
    assert got.info.run_name == "baseline" and got.info.experiment_id == exp_id
    assert got.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{rid}/artifacts"
    assert got.data.params == {"lr": "0.1", "depth": "6"}
    assert got.data.metrics == {"loss": 0.25, "acc": 0.875}
    assert {"team": "risk", "stage": "dev"}.items() <= got.data.tags.items()
    assert "scratch" not in got.data.tags
    assert [(m.step, m.value, m.timestamp) for m in client.get_metric_history(rid, "loss")] == [
        (0, 0.9, T0),
        (1, 0.5, T0 + 1),
        (2, 0.25, T0 + 2),
    ]
    [ds_input] = got.inputs.dataset_inputs
    assert ds_input.dataset.name == "train" and ds_input.dataset.digest == dataset.digest
    assert {t.key: t.value for t in ds_input.tags} == {"mlflow.data.context": "training"}
    assert [(f.path, f.is_dir) for f in client.list_artifacts(rid)] == [
        ("notes.txt", False),
        ("plots", True),
    ]
    fetched = Path(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=str(tmp_path / "m")))
    assert _files(fetched) == {
        "notes.txt": note.read_bytes(),
        **{f"plots/{k}": v for k, v in _files(plots).items()},
    }

    # -- loopstack's view of the same run, through its own API -----------------------------
    ls_client = TrackingClient(tracking_uri=server)
    run = ls_client.get_run(rid)
    assert (run.run_name, run.status, run.experiment_id) == ("baseline", "FINISHED", exp_id)
    assert (run.start_time, run.end_time) == (got.info.start_time, got.info.end_time)
    assert run.params == got.data.params
    assert run.metrics == got.data.metrics
    assert run.tags == got.data.tags
    assert run.artifact_uri == f"{exp_id}/{rid}/artifacts"
    assert ls_client.get_experiment(exp_id).name == "fraud"
    acc = ls_client.get_metric_history(rid, "acc")
    assert [(m.step, m.value, m.timestamp) for m in acc] == [(0, 0.8, T0 + 10), (1, 0.875, T0 + 20)]
    [inp] = run.inputs
    assert (inp.name, inp.digest, inp.source_type) == (
        "train",
        dataset.digest,
        ds_input.dataset.source_type,
    )
    assert inp.schema == ds_input.dataset.schema and inp.profile == ds_input.dataset.profile
    assert inp.tags == {"mlflow.data.context": "training"}
    listed = {f.path: f for f in ls_client.list_artifacts(rid)}
    assert set(listed) == {"notes.txt", "plots"} and listed["plots"].is_dir
    assert listed["notes.txt"].sha256 == _sha256(note)
    deep = {f.path: f for f in ls_client.list_artifacts(rid, "plots/sub")}
    assert deep["plots/sub/deep.bin"].sha256 == _sha256(plots / "sub" / "deep.bin")
    out = ls_client.download_artifacts(rid, "plots", tmp_path / "ls")
    assert _files(out) == _files(plots)


def test_mlflow_search_runs_filters_orders_and_pages(server: str) -> None:
    exp_id = mlflow.set_experiment("sweep").experiment_id
    ids = {}
    for name, lr, loss in [("a", "0.1", 0.30), ("b", "0.2", 0.10), ("c", "0.1", 0.20)]:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("loss", loss)
            ids[name] = run.info.run_id

    frame = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string="metrics.loss < 0.25", order_by=["metrics.loss ASC"]
    )
    assert list(frame["run_id"]) == [ids["b"], ids["c"]]
    assert list(frame["metrics.loss"]) == [0.10, 0.20]

    client = MlflowClient()
    found = client.search_runs([exp_id], "params.lr = '0.1'", order_by=["metrics.loss DESC"])
    assert [r.info.run_id for r in found] == [ids["a"], ids["c"]]
    first = client.search_runs([exp_id], order_by=["attributes.run_name ASC"], max_results=2)
    assert [r.info.run_name for r in first] == ["a", "b"] and first.token
    rest = client.search_runs(
        [exp_id], order_by=["attributes.run_name ASC"], max_results=2, page_token=first.token
    )
    assert [r.info.run_name for r in rest] == ["c"] and not rest.token

    client.delete_run(ids["a"])
    assert {r.info.run_id for r in client.search_runs([exp_id])} == {ids["b"], ids["c"]}
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids["a"]]
    assert deleted[0].info.lifecycle_stage == "deleted"
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 3
    client.restore_run(ids["a"])
    assert len(client.search_runs([exp_id])) == 3


def test_loopstack_logs_and_mlflow_reads_the_same_run(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    import loopstack as ls

    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server)
    note, plots = _artifact_tree(tmp_path)
    frame = pd.DataFrame({"f1": [0.1, 0.2], "f2": [1.0, 2.0]})
    with ls.start_run(experiment="churn", run_name="ls-run", params={"alpha": 0.5}) as run:
        for step in range(5):
            ls.log_metric("rmse", 1.0 / (step + 1), step=step, timestamp=T0 + step)
        ls.set_tag("owner", "data-team")
        ls.log_artifact(note)
        ls.log_artifacts(plots, artifact_path="plots")
        digest = ls.log_input(frame, name="features", context="training")
    rid = run.run_id

    client = MlflowClient()
    got = client.get_run(rid)
    exp = client.get_experiment_by_name("churn")
    assert exp is not None and got.info.experiment_id == exp.experiment_id
    assert exp.artifact_location == f"mlflow-artifacts:/{exp.experiment_id}"
    assert (got.info.run_name, got.info.status) == ("ls-run", "FINISHED")
    assert got.data.params == {"alpha": "0.5"}
    assert got.data.metrics == {"rmse": 0.2}
    assert got.data.tags["owner"] == "data-team"
    assert got.data.tags == ls.TrackingClient(tracking_uri=server).get_run(rid).tags
    history = client.get_metric_history(rid, "rmse")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (s, 1.0 / (s + 1), T0 + s) for s in range(5)
    ]
    [ds_input] = got.inputs.dataset_inputs
    assert (ds_input.dataset.name, ds_input.dataset.digest) == ("features", digest)

    found = client.search_runs([exp.experiment_id], "params.alpha = '0.5' and metrics.rmse < 1")
    assert [r.info.run_id for r in found] == [rid]
    assert [(f.path, f.is_dir) for f in client.list_artifacts(rid)] == [
        ("notes.txt", False),
        ("plots", True),
    ]
    sizes = {f.path: f.file_size for f in client.list_artifacts(rid, "plots")}
    assert sizes == {"plots/roc.csv": (plots / "roc.csv").stat().st_size, "plots/sub": None}
    one = client.download_artifacts(rid, "notes.txt", str(tmp_path / "one"))
    assert Path(one).read_bytes() == note.read_bytes()
    tree = client.download_artifacts(rid, "plots", str(tmp_path / "tree"))
    assert _files(Path(tree)) == _files(plots)


def test_experiment_lifecycle_through_the_mlflow_client(server: str) -> None:
    client = MlflowClient()
    eid = client.create_experiment(
        "lifecycle", artifact_location="s3://elsewhere/x", tags={"team": "risk"}
    )
    exp = client.get_experiment(eid)
    # loopstack keeps its own location (served by the proxy) and records the one asked for
    assert exp.artifact_location == f"mlflow-artifacts:/{eid}"
    assert exp.tags == {
        "team": "risk",
        "loopstack.mlflow.requested_artifact_location": "s3://elsewhere/x",
    }
    assert exp.lifecycle_stage == "active" and exp.creation_time > 0
    assert client.get_experiment_by_name("nope") is None

    client.set_experiment_tag(eid, "owner", "ana")
    client.delete_experiment_tag(eid, "team")
    client.rename_experiment(eid, "lifecycle-2")
    exp = client.get_experiment_by_name("lifecycle-2")
    assert exp is not None and exp.experiment_id == eid
    assert exp.tags["owner"] == "ana" and "team" not in exp.tags

    client.create_experiment("other")
    names = [e.name for e in client.search_experiments(filter_string="name LIKE 'lifecycle%'")]
    assert names == ["lifecycle-2"]
    by_tag = client.search_experiments(filter_string="tags.owner = 'ana'")
    assert [e.experiment_id for e in by_tag] == [eid]
    ordered = [e.name for e in client.search_experiments(order_by=["name ASC"])]
    assert ordered == ["Default", "lifecycle-2", "other"]

    run = client.create_run(eid, run_name="inside")
    client.delete_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    assert eid not in {e.experiment_id for e in client.search_experiments()}
    assert [
        e.experiment_id for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)
    ] == [eid]
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "active"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"


def test_mlflow_client_sees_mlflow_error_codes(server: str) -> None:
    client = MlflowClient()
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.create_experiment("dup")
    with pytest.raises(MlflowException) as dup:
        client.create_experiment("dup")
    assert dup.value.error_code == "RESOURCE_ALREADY_EXISTS"

    run = client.create_run("0")
    rid = run.info.run_id
    with pytest.raises(MlflowException) as bad_key:
        client.log_param(rid, "bad key!", "1")
    assert bad_key.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_param(rid, "p", "1")
    with pytest.raises(MlflowException) as changed:
        client.log_param(rid, "p", "2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(rid).data.metrics == {} and client.get_run(rid).data.params == {"p": "1"}

    client.set_terminated(rid)
    client.log_metric(rid, "loss", 1.0)  # a finished run still takes metrics, as in MLflow
    client.set_tag(rid, "note", "tags may still change")
    client.set_tag(rid, "mlflow.runName", "renamed")
    got = client.get_run(rid)
    assert got.data.tags["note"] == "tags may still change" and got.info.run_name == "renamed"
    assert got.data.metrics == {"loss": 1.0}


def test_mlflow_client_with_a_token_when_auth_is_on(
    ls_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from loopstack.auth import create_token
    from loopstack.store import open_stores

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    secret, _ = create_token(open_stores().db, name="mlflow", user="alice")
    url = request.getfixturevalue("server")  # started after LOOPSTACK_AUTH is set
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
    note = tmp_path / "n.txt"
    note.write_text("x")
    client = MlflowClient()
    run = client.create_run("0")
    client.log_metric(run.info.run_id, "m", 1.0)
    client.log_artifact(run.info.run_id, str(note))
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["n.txt"]

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "lst_wrong")
    with pytest.raises(MlflowException) as refused:
        MlflowClient(tracking_uri=url).get_run(run.info.run_id)
    assert refused.value.error_code == "UNAUTHENTICATED"
