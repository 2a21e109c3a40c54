"""load_model checks a version's package record against its keyed registration event.

The attack: with database (and artifact store) access, swap in another pickled model,
rewrite the manifest, the artifact entries and the version's file digests so that
every digest agrees. Only the audited registration event still knows the real ones.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

import loopstack as ls
from loopstack.registry import ModelVersion
from loopstack.registry._sql_store import package_digest
from loopstack.store import open_stores

pytestmark = pytest.mark.usefixtures("use_db")
sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")

MANIFEST = "loopstack-model.json"


class _Planted:
    """A pickle that leaves a marker file behind when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _register() -> tuple[ModelVersion, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [f"f{i}" for i in range(X.shape[1])]
    clf = LogisticRegression(max_iter=500).fit(X, y)
    with ls.start_run(experiment="churn", capture_env=False) as run:
        version = run.log_model(clf, name="churn", sample_input=X.head(5))
    assert version is not None
    return version, X


def _swap_package(version: ModelVersion, marker: Path) -> dict[str, str]:
    """Plant another model, with every digest the database holds made to agree with it."""
    stores = open_stores()
    blobs = stores.artifacts.blobs
    model_file = next(p for p in version.files if p != MANIFEST)
    evil_sha, evil_size = blobs.put_bytes(pickle.dumps(_Planted(marker)))
    manifest = json.loads(blobs.read_bytes(version.files[MANIFEST]))
    manifest["files"][model_file] = evil_sha
    manifest_sha, manifest_size = blobs.put_bytes(json.dumps(manifest).encode())
    files = {**version.files, model_file: evil_sha, MANIFEST: manifest_sha}
    with stores.db.engine.begin() as conn:
        swapped = [(model_file, evil_sha, evil_size), (MANIFEST, manifest_sha, manifest_size)]
        for name, sha, size in swapped:
            conn.execute(
                text("UPDATE artifact_entries SET sha256=:s, size=:n WHERE path=:p"),
                {"s": sha, "n": size, "p": f"{version.source}/{name}"},
            )
        conn.execute(
            text("UPDATE model_versions SET files=:f, digest=:d WHERE version=:v"),
            {
                "f": json.dumps(files, sort_keys=True),
                "d": package_digest(files),
                "v": version.version,
            },
        )
    return files


def test_a_rewritten_package_is_refused_before_anything_is_unpickled(tmp_path: Path) -> None:
    version, X = _register()
    before = ls.load_model("models:/churn/1").predict(X.head(3))
    marker = tmp_path / "unpickled"
    files = _swap_package(version, marker)

    # Every digest the database and the artifact store hold now agrees with the plant:
    from loopstack.registry.flavors._digests import verify_files
    from loopstack.registry.flavors._manifest import read_manifest

    package = open_stores().artifacts.download(version.source, tmp_path / "dl")
    verify_files(package, dict(files), listed=read_manifest(package).files)
    assert ls.get_registry().get_model_version("churn", 1).files == files

    for uri in ("models:/churn/1", "models:/churn/latest"):
        with pytest.raises(ls.Tampered) as info:
            ls.load_model(uri)
        message = str(info.value)
        assert "model 'churn' v1: its files' digests" in message
        assert "differ from those recorded when it was registered (audit event" in message
        assert "the package was changed after registration; nothing was loaded" in message
    assert not marker.exists()
    assert isinstance(before, np.ndarray)


def test_a_registration_event_rewritten_to_match_is_refused(tmp_path: Path) -> None:
    from loopstack.registry._sql_store import _registered
    from loopstack.store import audit

    version, _ = _register()
    marker = tmp_path / "unpickled"
    files = _swap_package(version, marker)
    forged = audit.digest_of(_registered(version.source, package_digest(files), version.run_id))
    db = open_stores().db
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET digest=:d WHERE action='model_version.create'"
                " AND object_id='churn/1'"
            ),
            {"d": forged},
        )
    with pytest.raises(ls.Tampered, match="audit event of its registration .* is not authentic"):
        ls.load_model("models:/churn/1")
    assert not marker.exists()


def test_a_version_whose_registration_event_is_gone_is_refused(tmp_path: Path) -> None:
    version, _ = _register()
    with open_stores().db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE action='model_version.create'"))
    with pytest.raises(ls.Tampered, match="has no audited registration event"):
        ls.load_model("models:/churn/1")


def test_through_a_server_the_server_checks_the_registration(
    tmp_path: Path, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    version, X = _register()
    monkeypatch.setenv("LOOPSTACK_TRACKING_URI", live_server)
    expected = ls.load_model("models:/churn/1").predict(X.head(3))
    assert len(expected) == 3
    marker = tmp_path / "unpickled"
    _swap_package(version, marker)
    with pytest.raises(ls.Tampered, match="model 'churn' v1: its files' digests"):
        ls.load_model("models:/churn/latest")
    assert not marker.exists()


def test_a_renamed_model_loads_and_a_tampered_one_is_not_renamed(tmp_path: Path) -> None:
    version, X = _register()
    reg = ls.get_registry()
    reg.update_registered_model("churn", new_name="attrition")
    assert len(ls.load_model("models:/attrition/1").predict(X.head(2))) == 2
    marker = tmp_path / "unpickled"
    renamed = reg.get_model_version("attrition", 1)
    _swap_package(renamed, marker)
    with pytest.raises(ls.Tampered, match="model 'attrition' v1: .*the rename was refused"):
        reg.update_registered_model("attrition", new_name="churn")
    assert reg.get_registered_model("attrition").name == "attrition"
    with pytest.raises(ls.Tampered, match="nothing was loaded"):
        ls.load_model("models:/attrition/1")
    assert not marker.exists()
