"""package_model and load_package around the flavors: destinations, manifests, requirements."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from loopstack.errors import ArtifactCorrupted, Invalid, NotFound
from loopstack.registry.flavors import (
    MANIFEST_NAME,
    RequirementMismatchWarning,
    load_package,
    package_model,
)

from .flavor_cases import build
from .flavor_models import TripwireModel


def _edit_manifest(directory: Path, **changes: object) -> None:
    path = directory / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.fixture
def packaged(tmp_path: Path) -> Path:
    model = TripwireModel(np.array([1.0, 2.0]))
    package_model(model, tmp_path / "m", sample_input=np.ones((2, 2)))
    return tmp_path / "m"


def test_package_digest_of_the_manifest_is_returned(tmp_path: Path) -> None:
    case = build("sklearn_logistic")
    package = package_model(case.model, tmp_path / "m", sample_input=case.sample)
    digest = hashlib.sha256((tmp_path / "m" / MANIFEST_NAME).read_bytes()).hexdigest()
    assert package.manifest_sha256 == digest
    load_package(tmp_path / "m", expected_files={**package.files, MANIFEST_NAME: digest})


def test_edited_manifest_is_caught_when_its_digest_is_expected(packaged: Path) -> None:
    files = json.loads((packaged / MANIFEST_NAME).read_text())["files"]
    digest = hashlib.sha256((packaged / MANIFEST_NAME).read_bytes()).hexdigest()
    _edit_manifest(packaged, has_proba=True)
    with pytest.raises(
        ArtifactCorrupted, match=f"'{MANIFEST_NAME}' is corrupted: expected sha256 {digest}"
    ):
        load_package(packaged, expected_files={**files, MANIFEST_NAME: digest})


def test_other_major_minor_version_warns_but_loads(packaged: Path) -> None:
    manifest = json.loads((packaged / MANIFEST_NAME).read_text())
    _edit_manifest(packaged, requirements=[*manifest["requirements"], "numpy==0.1.0"])
    with pytest.warns(
        RequirementMismatchWarning, match=r"saved with numpy==0\.1\.0 but numpy==\S+ is installed"
    ):
        loaded = load_package(packaged)
    np.testing.assert_allclose(loaded.predict([[1.0, 1.0]]), [3.0])


def test_same_major_minor_does_not_warn(packaged: Path) -> None:
    import importlib.metadata

    major, minor, *_ = importlib.metadata.version("numpy").split(".")
    _edit_manifest(packaged, requirements=[f"numpy=={major}.{minor}.999"])
    load_package(packaged)  # warnings are errors in the test suite


def test_malformed_requirement_is_invalid(packaged: Path) -> None:
    _edit_manifest(packaged, requirements=["numpy>=1"])
    with pytest.raises(Invalid, match="must look like 'package==version'; got 'numpy>=1'"):
        load_package(packaged)


def test_newer_format_version_is_refused(packaged: Path) -> None:
    _edit_manifest(packaged, format_version=99)
    with pytest.raises(Invalid, match="format version <= 1; got format_version 99"):
        load_package(packaged)


def test_garbled_manifest_is_corrupted(packaged: Path) -> None:
    (packaged / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ArtifactCorrupted, match="not valid JSON"):
        load_package(packaged)


def test_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no model package at"):
        load_package(tmp_path / "absent")
    with pytest.raises(Invalid, match=f"expected a {MANIFEST_NAME}"):
        load_package(tmp_path)


def test_destination_must_be_empty(packaged: Path) -> None:
    with pytest.raises(Invalid, match="dest_dir must be an empty directory .* has files in it"):
        package_model(TripwireModel(np.ones(2)), packaged)


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(Invalid, match="failed to predict on sample_input"):
        package_model(TripwireModel(np.ones(2)), tmp_path / "empty", sample_input=np.ones((2, 5)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not any((tmp_path / "empty").iterdir())


def test_model_rejecting_input_is_invalid_not_a_crash(tmp_path: Path) -> None:
    package_model(TripwireModel(np.ones(2)), tmp_path / "m")  # no sample: no signature
    with pytest.raises(Invalid, match="the pyfunc model rejected the input"):
        load_package(tmp_path / "m").predict(np.ones((2, 5)))
