"""The real ``mlflow`` client's model registry against a live loopstack server.

What the MLflow client registers, loopstack's own registry reads back: numbered
versions whose files are the sha256s of the artifact manifest, the run they came
from, aliases with their history. Protected aliases refuse the MLflow client with
PERMISSION_DENIED naming the approval they need.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from loopstack.registry import package_digest, registry  # noqa: E402
from loopstack.store import open_stores  # noqa: E402

pytestmark = [
    pytest.mark.mlflow,
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:mlflow.*"),
]

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.2
mlflow_version: 3.17.0
signature:
  inputs: '[{"type": "double", "name": "tenure", "required": true}, {"type": "long",
    "name": "plan", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
"""


@pytest.fixture
def server(mlflow_uri: str) -> str:
    """The live server, as the MLflow client's tracking URI (see tests/server/conftest.py)."""
    return mlflow_uri


def _model_dir(root: Path, *, mlmodel: bool = True) -> Path:
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.pkl").write_bytes(bytes(range(256)) * 4)
    (model / "requirements.txt").write_text("scikit-learn==1.5.2\n")
    (model / "sub" / "extra.json").write_text('{"threshold": 0.5}\n')
    if mlmodel:
        (model / "MLmodel").write_text(MLMODEL)
    return model


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _logged_run(tmp_path: Path, *, mlmodel: bool = True) -> tuple[str, str, Path]:
    model = _model_dir(tmp_path / "src", mlmodel=mlmodel)
    exp_id = mlflow.set_experiment("churn-exp").experiment_id
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model), artifact_path="model")
    return exp_id, run.info.run_id, model


def test_register_alias_describe_rename_and_read_back_in_loopstack(
    server: str, tmp_path: Path
) -> None:
    exp_id, rid, model = _logged_run(tmp_path)
    client = MlflowClient()

    mv1 = mlflow.register_model(f"runs:/{rid}/model", "churn")
    mv2 = mlflow.register_model(f"runs:/{rid}/model", "churn")
    assert (mv1.name, mv1.version, mv2.version) == ("churn", "1", "2")
    assert mv1.source == f"mlflow-artifacts:/{exp_id}/{rid}/artifacts/model"
    assert mv1.run_id == rid and mv1.status == "READY" and mv1.current_stage == "None"

    # -- aliases: free ones move, the protected one needs an approval -------------------------
    client.set_registered_model_alias("churn", "staging", 2)
    assert client.get_model_version_by_alias("churn", "staging").version == "2"
    client.set_registered_model_alias("churn", "staging", 1)
    client.set_registered_model_alias("churn", "staging", "2")
    assert client.get_model_version("churn", "2").aliases == ["staging"]
    with pytest.raises(MlflowException) as denied:
        client.set_registered_model_alias("churn", "production", 2)
    assert denied.value.error_code == "PERMISSION_DENIED"
    assert "protected alias" in denied.value.message
    assert "approved request" in denied.value.message
    assert "loopstack models promote churn 2 --alias production" in denied.value.message
    assert "production" not in client.get_registered_model("churn").aliases

    # -- search and get ------------------------------------------------------------------------
    assert [m.name for m in client.search_registered_models()] == ["churn"]
    assert [m.name for m in client.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    assert client.search_registered_models("name = 'other'") == []
    versions = client.search_model_versions("name='churn'")
    assert [v.version for v in versions] == ["2", "1"]
    assert {v.run_id for v in versions} == {rid}
    assert [
        v.version
        for v in client.search_model_versions(f"run_id = '{rid}'", order_by=["version_number ASC"])
    ] == ["1", "2"]
    got = client.get_registered_model("churn")
    assert got.aliases == {"staging": "2"}
    assert [v.version for v in got.latest_versions] == ["2"]

    # -- descriptions and tags -------------------------------------------------------------------
    client.update_registered_model("churn", description="predicts churn")
    client.update_model_version("churn", 1, description="first cut")
    client.set_registered_model_tag("churn", "team", "retention")
    client.set_registered_model_tag("churn", "scratch", "x")
    client.delete_registered_model_tag("churn", "scratch")
    client.set_model_version_tag("churn", "1", "validated", "yes")
    client.set_model_version_tag("churn", "1", "scratch", "x")
    client.delete_model_version_tag("churn", "1", "scratch")
    got = client.get_registered_model("churn")
    assert got.description == "predicts churn" and got.tags == {"team": "retention"}
    v1 = client.get_model_version("churn", "1")
    assert v1.description == "first cut" and v1.tags == {"validated": "yes"}

    # -- the registered files come back through models:/ URIs -------------------------------------
    assert client.get_model_version_download_uri("churn", "1") == mv1.source
    fetched = Path(
        mlflow.artifacts.download_artifacts("models:/churn@staging", dst_path=str(tmp_path / "dl"))
    )
    downloaded = _files(fetched)
    # the client writes this file itself after a models:/ download
    assert downloaded.pop("registered_model_meta") == b"model_name: churn\nmodel_version: '2'\n"
    assert downloaded == _files(model)

    client.delete_registered_model_alias("churn", "staging")
    with pytest.raises(MlflowException) as gone:
        client.get_model_version_by_alias("churn", "staging")
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    client.rename_registered_model("churn", "churn-v2")
    assert client.get_registered_model("churn-v2").aliases == {}
    assert client.get_model_version("churn-v2", "2").version == "2"
    with pytest.raises(MlflowException) as old:
        client.get_registered_model("churn")
    assert old.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # -- loopstack's own registry over the same database reads the same versions ----------------
    reg = registry()
    stored = {
        f.path: f.sha256
        for f in open_stores().artifacts.list(f"{exp_id}/{rid}/artifacts/model", recursive=True)
    }
    assert stored == _digests(model)
    ls_versions = reg.search_model_versions(name="churn-v2")
    assert [v.version for v in ls_versions] == [2, 1]
    for v in ls_versions:
        assert v.files == stored and v.digest == package_digest(stored)
        assert v.run_id == rid and v.source == f"{exp_id}/{rid}/artifacts/model"
        assert v.flavor == "mlflow.sklearn"
        assert v.signature == {
            "inputs": {
                "type": "columns",
                "columns": [
                    {"name": "tenure", "dtype": "double"},
                    {"name": "plan", "dtype": "long"},
                ],
            }
        }
        assert v.requirements == []
    assert reg.get_model_version("churn-v2", 1).description == "first cut"
    model_row = reg.get_registered_model("churn-v2")
    assert model_row.description == "predicts churn" and model_row.tags == {"team": "retention"}
    moves = [(m.from_version, m.to_version) for m in reg.alias_history("churn-v2", "staging")]
    assert moves == [(None, 2), (2, 1), (1, 2), (2, None)]
    assert reg.alias_history("churn-v2", "production") == []


def test_register_model_needs_an_mlmodel_file_in_mlflow_3(server: str, tmp_path: Path) -> None:
    """MLflow 3's ``register_model("runs:/...")`` looks for an MLmodel file under the path,
    then for a logged model of that name; with neither, the client refuses before asking
    for a version (having already created the registered model)."""
    _, rid, _ = _logged_run(tmp_path, mlmodel=False)
    with pytest.raises(MlflowException, match="Unable to find a logged_model"):
        mlflow.register_model(f"runs:/{rid}/model", "bare")
    client = MlflowClient()
    assert client.get_registered_model("bare").latest_versions == []
    # Asked explicitly, the same files register (flavor unknown) with every digest.
    mv = client.create_model_version("bare", f"runs:/{rid}/model", run_id=rid)
    assert mv.version == "1" and mv.run_id == rid
    v = registry().get_model_version("bare", 1)
    assert v.flavor == "unknown" and set(v.files) == {
        "model.pkl",
        "requirements.txt",
        "sub/extra.json",
    }


def test_empty_external_and_registered_sources(server: str, tmp_path: Path) -> None:
    exp_id, rid, model = _logged_run(tmp_path)
    client = MlflowClient()
    mlflow.register_model(f"runs:/{rid}/model", "churn")
    client.set_registered_model_alias("churn", "champion", 1)

    # nothing stored under the source: registered, with no files and a tag saying so
    client.create_registered_model("empty")
    empty = client.create_model_version("empty", f"runs:/{rid}/nothing-here", run_id=rid)
    assert empty.source == f"mlflow-artifacts:/{exp_id}/{rid}/artifacts/nothing-here"
    assert empty.tags["loopstack.package"].startswith("empty:")
    assert registry().get_model_version("empty", 1).files == {}

    # an external location: kept as given, no digests, a tag saying why
    client.create_registered_model("ext")
    ext = client.create_model_version("ext", "s3://bucket/models/churn")
    assert ext.source == "s3://bucket/models/churn"
    assert ext.tags["loopstack.package"].startswith("external:")
    assert client.get_model_version_download_uri("ext", "1") == "s3://bucket/models/churn"

    # another registered version: its package and run carry over, and it becomes the parent
    copy = mlflow.register_model("models:/churn@champion", "churn-copy")
    assert copy.version == "1" and copy.run_id == rid
    assert copy.source == f"mlflow-artifacts:/{exp_id}/{rid}/artifacts/model"
    reg = registry()
    original, copied = reg.get_model_version("churn", 1), reg.get_model_version("churn-copy", 1)
    assert copied.files == original.files == _digests(model)
    assert copied.digest == original.digest and copied.flavor == "mlflow.sklearn"

    # a single file as the source
    client.create_registered_model("one-file")
    single = client.create_model_version(
        "one-file", f"mlflow-artifacts:/{exp_id}/{rid}/artifacts/model/model.pkl", run_id=rid
    )
    assert "loopstack.package" not in single.tags
    assert reg.get_model_version("one-file", 1).files == {"model.pkl": _digests(model)["model.pkl"]}


def test_what_loopstack_refuses_through_the_client(server: str, tmp_path: Path) -> None:
    _, rid, _ = _logged_run(tmp_path)
    client = MlflowClient()
    mlflow.register_model(f"runs:/{rid}/model", "churn")

    with pytest.raises(MlflowException) as deleted:
        client.delete_model_version("churn", "1")
    assert deleted.value.error_code == "INVALID_STATE"
    assert "keeps every registered version" in deleted.value.message
    with pytest.raises(MlflowException) as staged, pytest.warns(FutureWarning):
        client.transition_model_version_stage("churn", "1", "Production")
    assert staged.value.error_code == "INVALID_STATE" and "alias" in staged.value.message

    # production set through loopstack (an admin override) keeps the model from deletion
    registry(actor="admin").set_alias("churn", "production", 1, override=True)
    assert client.get_model_version_by_alias("churn", "production").version == "1"
    with pytest.raises(MlflowException) as kept:
        client.delete_registered_model("churn")
    assert kept.value.error_code == "PERMISSION_DENIED" and "production" in kept.value.message
    with pytest.raises(MlflowException) as unaliased:
        client.delete_registered_model_alias("churn", "production")
    assert unaliased.value.error_code == "PERMISSION_DENIED"

    mlflow.register_model(f"runs:/{rid}/model", "scratch")
    client.delete_registered_model("scratch")
    assert [m.name for m in client.search_registered_models()] == ["churn"]
