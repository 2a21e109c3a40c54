"""log_model -> registry -> load_model, end to end over the real stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.store import open_stores

pytestmark = pytest.mark.usefixtures("use_db")
sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return frame, iris.target.to_numpy()


def _fit() -> tuple[object, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), X


def test_log_register_and_load_by_alias_version_and_run() -> None:
    clf, X = _fit()
    with ls.start_run(experiment="iris") as run:
        ls.log_input(X, name="iris")
        v = run.log_model(clf, name="iris-clf", sample_input=X.head(5))
    assert v.version == 1 and v.flavor == "sklearn" and v.run_id == run.run_id
    assert any(r.startswith("scikit-learn==") for r in v.requirements)
    assert [c["name"] for c in v.signature["inputs"]["columns"]] == list(X.columns)
    reg = ls.get_registry()
    reg.set_alias("iris-clf", "staging", 1)
    expected = clf.predict_proba(X.tail(10))
    for uri in (
        "models:/iris-clf@staging",
        "models:/iris-clf/1",
        "models:/iris-clf/latest",
        f"runs:/{run.run_id}/model",
    ):
        model = ls.load_model(uri)
        np.testing.assert_allclose(model.predict_proba(X.tail(10)), expected)
    graph = ls.lineage(v)
    assert graph.upstream[0] == f"run:{run.run_id}" and graph.upstream[1].startswith("dataset:")


def test_input_is_checked_against_the_signature() -> None:
    clf, X = _fit()
    with ls.start_run(experiment="iris") as run:
        run.log_model(clf, name="checked", sample_input=X.head(5))
    model = ls.load_model("models:/checked/1")
    with pytest.raises(ls.Invalid, match="petal_width"):
        model.predict(X.drop(columns="petal_width"))
    with pytest.raises(ls.Invalid, match="sepal_length"):
        model.predict(X.assign(sepal_length="long"))


def test_a_tampered_artifact_is_refused(ls_home: Path) -> None:
    clf, X = _fit()
    with ls.start_run(experiment="iris") as run:
        v = run.log_model(clf, name="tampered", sample_input=X.head(5))
    blobs = open_stores().artifacts.blobs
    model_file = next(p for p in v.files if p != "loopstack-model.json")
    blob = blobs._path(v.files[model_file])  # type: ignore[attr-defined]
    blob.write_bytes(b"not the model that was registered")
    with pytest.raises(ls.ArtifactCorrupted, match="expected sha256"):
        ls.load_model("models:/tampered/1")


def test_unknown_uris_say_what_was_expected() -> None:
    with pytest.raises(ls.Invalid, match="expected a model URI"):
        ls.load_model("s3://bucket/model")
    with pytest.raises(ls.NotFound, match="no registered model named 'ghost'"):
        ls.load_model("models:/ghost@production")


def test_an_edited_manifest_is_refused() -> None:
    import json

    clf, X = _fit()
    with ls.start_run(experiment="iris") as run:
        v = run.log_model(clf, name="manifest", sample_input=X.head(5))
    assert "loopstack-model.json" in v.files
    blobs = open_stores().artifacts.blobs
    path = blobs._path(v.files["loopstack-model.json"])  # type: ignore[attr-defined]
    manifest = json.loads(path.read_text())
    manifest["requirements"] = ["scikit-learn==0.1"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ls.ArtifactCorrupted):
        ls.load_model("models:/manifest/1")


def test_onnx_export_records_parity_and_serves_predictions() -> None:
    pytest.importorskip("skl2onnx", reason="install loopstack[onnx] to run this test")
    clf, X = _fit()
    with ls.start_run(experiment="iris") as run:
        v = run.log_model(clf, name="fast", sample_input=X.head(20), onnx=True)
    assert v.onnx_max_abs_diff is not None and v.onnx_max_abs_diff < 1e-4
    fast = ls.load_model("models:/fast/1", prefer_onnx=True)
    assert fast.uses_onnx
    np.testing.assert_allclose(
        fast.predict_proba(X.tail(10)), clf.predict_proba(X.tail(10)), atol=1e-4
    )
