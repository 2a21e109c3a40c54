"""The pyfunc flavor: pickles, and proof that a tampered pickle is never unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loopstack.errors import ArtifactCorrupted, Invalid
from loopstack.registry.flavors import MANIFEST_NAME, load_package, package_model

from .flavor_cases import flip_byte
from .flavor_models import UNPICKLED, TripwireModel


@pytest.fixture
def tripwire_package(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    model = TripwireModel(np.array([1.0, -2.0, 0.5]), intercept=3.0)
    directory = tmp_path / "model"
    package = package_model(model, directory, sample_input=np.ones((4, 3)))
    UNPICKLED.clear()  # packaging loads the model back once, to check it
    return directory, package.files


def test_loading_unpickles_the_model(tripwire_package: tuple[Path, dict[str, str]]) -> None:
    directory, files = tripwire_package
    loaded = load_package(directory, expected_files=files)
    assert UNPICKLED == ["TripwireModel"]  # the tripwire works
    np.testing.assert_allclose(loaded.predict([[1.0, 1.0, 1.0]]), [2.5])


@pytest.mark.parametrize("offset", [None, 0, -1])
def test_tampered_pickle_is_never_unpickled(
    tripwire_package: tuple[Path, dict[str, str]], offset: int | None
) -> None:
    directory, files = tripwire_package
    flip_byte(directory / "model.pkl", offset)
    with pytest.raises(ArtifactCorrupted, match=r"'model.pkl' is corrupted: expected sha256"):
        load_package(directory, expected_files=files)
    with pytest.raises(ArtifactCorrupted, match="'model.pkl'"):
        load_package(directory)
    assert UNPICKLED == []


def test_swapped_manifest_is_caught_with_the_registry_digests(
    tripwire_package: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    directory, files = tripwire_package
    # An attacker replaces the pickle AND rewrites the manifest to match it.
    other = tmp_path / "other"
    package_model(TripwireModel(np.zeros(3)), other, sample_input=np.ones((4, 3)))
    UNPICKLED.clear()
    (directory / "model.pkl").write_bytes((other / "model.pkl").read_bytes())
    (directory / MANIFEST_NAME).write_bytes((other / MANIFEST_NAME).read_bytes())
    with pytest.raises(ArtifactCorrupted, match="'model.pkl' is corrupted"):
        load_package(directory, expected_files=files)
    assert UNPICKLED == []


def test_manifest_says_it_is_a_pickle(tripwire_package: tuple[Path, dict[str, str]]) -> None:
    directory, _ = tripwire_package
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    meta = manifest["flavor_metadata"]
    assert meta["pickle"] is True
    assert meta["serializer"] == "cloudpickle"
    assert meta["class"].endswith("flavor_models.TripwireModel")
    assert any(r.startswith("cloudpickle==") for r in manifest["requirements"])
    assert manifest["signature"]["inputs"] == {
        "type": "tensor",
        "dtype": "float64",
        "shape": [-1, 3],
    }


def test_object_without_predict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="has no predict method"):
        package_model(object(), tmp_path / "model")
    assert not (tmp_path / "model").exists()
