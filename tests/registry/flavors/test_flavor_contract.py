"""The contract every flavor keeps, run against a model of each flavor variant.

Package -> load -> the same predictions as the original model on held-out
rows; the signature recorded; bad input rejected naming what is wrong; a
tampered file or an unmet requirement caught before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from loopstack.errors import ArtifactCorrupted, Invalid
from loopstack.registry.flavors import (
    MANIFEST_NAME,
    ModelPackage,
    Signature,
    TensorSpec,
    load_package,
    package_model,
)

from .flavor_cases import CASES, Case, build, flip_byte

pytestmark = pytest.mark.parametrize("case_name", list(CASES))


@pytest.fixture
def case(case_name: str) -> Case:
    return build(case_name)


@pytest.fixture
def packaged(case: Case, tmp_path: Path) -> tuple[Case, Path, ModelPackage]:
    directory = tmp_path / "model"
    return case, directory, package_model(case.model, directory, sample_input=case.sample)


def test_predictions_survive_the_round_trip(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, package = packaged
    assert package.flavor == case.flavor
    loaded = load_package(directory, expected_files=package.files)
    assert loaded.flavor == case.flavor
    np.testing.assert_allclose(loaded.predict(case.held_out), case.expected, rtol=1e-6)
    assert loaded.has_proba is (case.expected_proba is not None)
    assert package.has_proba is loaded.has_proba
    if case.expected_proba is not None:
        np.testing.assert_allclose(
            loaded.predict_proba(case.held_out), case.expected_proba, rtol=1e-6, atol=1e-7
        )
    else:
        with pytest.raises(Invalid, match=f"flavor {case.flavor}.* has no predict_proba"):
            loaded.predict_proba(case.held_out)


def test_manifest_records_what_was_written(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, package = packaged
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert manifest["flavor"] == case.flavor
    assert manifest["format_version"] == 1
    assert case.model_file in manifest["files"]
    on_disk = sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()
    )
    assert sorted([*manifest["files"], MANIFEST_NAME]) == on_disk
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
    assert manifest["files"] == package.files
    assert all("==" in r for r in manifest["requirements"])
    assert manifest["has_proba"] is package.has_proba
    assert manifest["onnx"] is None and package.onnx_max_abs_diff is None
    assert Signature.from_dict(manifest["signature"]) == package.signature


def test_signature_describes_the_sample(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, _, package = packaged
    signature = package.signature
    assert signature is not None and signature.output is not None
    assert signature.output.shape[0] == -1
    assert signature.output.shape[1:] == np.asarray(case.expected).shape[1:]
    if case.tabular:
        assert [(c.name, c.dtype) for c in signature.columns] == [
            (str(name), str(dtype)) for name, dtype in case.sample.dtypes.items()
        ]
    else:
        assert signature.inputs == TensorSpec(dtype="float32", shape=(-1, case.sample.shape[1]))


def test_missing_column_is_named(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, _ = packaged
    loaded = load_package(directory)
    if case.tabular:
        dropped = case.held_out.columns[1]
        with pytest.raises(Invalid, match=re.escape(f"missing column(s) '{dropped}'")):
            loaded.predict(case.held_out.drop(columns=[dropped]))
    else:
        with pytest.raises(Invalid, match=r"expects an array of shape \(N, 4\); got shape"):
            loaded.predict(case.held_out[:, :3])


def test_wrong_dtype_column_is_named(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, _ = packaged
    loaded = load_package(directory)
    if case.tabular:
        bad = case.held_out.copy()
        column = bad.columns[0]
        bad[column] = "abc"
        pattern = re.escape(f"column '{column}' should be float64, got ") + "(str|object)"
        with pytest.raises(Invalid, match=pattern):
            loaded.predict(bad)
    else:
        with pytest.raises(Invalid, match="expects an array of float32; got <U"):
            loaded.predict(np.full(case.held_out.shape, "abc"))


def test_accepts_rows_and_columns_as_plain_python(
    packaged: tuple[Case, Path, ModelPackage],
) -> None:
    case, directory, _ = packaged
    loaded = load_package(directory)
    if case.tabular:
        rows = case.held_out.head(5)
        reordered = rows[list(reversed(rows.columns))].assign(extra=1.0)
        as_records = rows.to_dict(orient="records")
        as_columns = {k: list(v) for k, v in rows.to_dict(orient="list").items()}
        for variant in (reordered, as_records, as_columns, rows.to_numpy()):
            np.testing.assert_allclose(loaded.predict(variant), case.expected[:5], rtol=1e-6)
    else:
        as_lists = case.held_out[:5].astype(np.float64).tolist()  # float64 narrows to float32
        np.testing.assert_allclose(loaded.predict(as_lists), case.expected[:5], rtol=1e-6)


def test_tampered_model_file_is_caught_before_loading(
    packaged: tuple[Case, Path, ModelPackage],
) -> None:
    case, directory, package = packaged
    flip_byte(directory / case.model_file)
    for expected in (None, package.files):
        with pytest.raises(ArtifactCorrupted) as raised:
            load_package(directory, expected_files=expected)
        message = str(raised.value)
        assert case.model_file in message
        assert package.files[case.model_file] in message
        assert hashlib.sha256((directory / case.model_file).read_bytes()).hexdigest() in message


def test_missing_and_extra_files_are_caught(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, package = packaged
    (directory / "extra.bin").write_bytes(b"x")
    with pytest.raises(ArtifactCorrupted, match="'extra.bin' is not among"):
        load_package(directory, expected_files=package.files)
    (directory / "extra.bin").unlink()
    (directory / case.model_file).unlink()
    with pytest.raises(ArtifactCorrupted, match=f"'{case.model_file}' is missing"):
        load_package(directory, expected_files=package.files)


def test_unmet_requirement_is_named(packaged: tuple[Case, Path, ModelPackage]) -> None:
    _, directory, package = packaged
    manifest_path = directory / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["requirements"].append("notapkg==1.0")
    manifest_path.write_text(json.dumps(manifest))
    digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    expected = {**package.files, MANIFEST_NAME: digest}
    with pytest.raises(
        Invalid,
        match=r"needs notapkg==1\.0 to load, but notapkg is not installed "
        r"\(pip install notapkg==1\.0\)",
    ):
        load_package(directory, expected_files=expected)


def test_row_by_row_equals_the_batch(packaged: tuple[Case, Path, ModelPackage]) -> None:
    case, directory, _ = packaged
    loaded = load_package(directory)
    batch = case.held_out[:3]
    one_by_one = [loaded.predict(batch[i : i + 1]) for i in range(3)]
    # float32 kernels may sum a batch in another order than a single row: a few ulps apart
    np.testing.assert_allclose(
        np.concatenate(one_by_one), loaded.predict(batch), rtol=1e-5, atol=1e-6
    )
