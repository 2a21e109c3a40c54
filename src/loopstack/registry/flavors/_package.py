"""Writing a model package: the flavor's files, an optional ONNX copy, and the manifest.

The package is built in a staging directory beside ``dest_dir`` and moved
into place only when complete, so a failure leaves nothing behind. Before
the move, the saved model is loaded back and run on ``sample_input``: that
output gives the signature, and a model that cannot be read back is caught
here rather than at serving time.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from loopstack.errors import Invalid, LoopstackError

from ._catalog import detect_flavor, get_flavor
from ._digests import file_digests
from ._flavor import Flavor
from ._inputs import as_frame_or_array
from ._manifest import ModelPackage, write_manifest
from ._mlmodel import write_mlflow_files
from ._onnx_export import export_sklearn_onnx
from ._signature import Signature, infer_signature

__all__ = ["package_model"]


def _choose_flavor(model: Any, name: str | None) -> Flavor:
    if name is None:
        return detect_flavor(model)
    flavor = get_flavor(name)
    if not flavor.matches(model):
        raise Invalid(
            f"flavor {name!r} cannot package a {type(model).__module__}."
            f"{type(model).__qualname__}; leave flavor unset to detect it",
            field="flavor",
        )
    return flavor


def _prepare_destination(dest_dir: Path) -> None:
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise Invalid(
            f"dest_dir must be an empty directory or not exist yet; {dest_dir} "
            f"{'is a file' if not dest_dir.is_dir() else 'has files in it'}",
            field="dest_dir",
        )
    dest_dir.parent.mkdir(parents=True, exist_ok=True)


def package_model(
    model: Any,
    dest_dir: Path | str,
    *,
    sample_input: Any = None,
    flavor: str | None = None,
    onnx: bool = False,
) -> ModelPackage:
    """Save ``model`` into ``dest_dir`` with a ``loopstack-model.json`` describing it.

    The package also holds an ``MLmodel`` file and MLflow's environment files, so
    ``mlflow.pyfunc.load_model`` (and the native MLflow flavor where there is one)
    loads it too.

    The flavor is detected unless named. ``sample_input`` (a DataFrame,
    array, dict of columns or list of row dicts) gives the signature.
    ``onnx=True`` (scikit-learn only) adds ``model.onnx`` and records the
    largest difference between its output and the native model's.

    >>> pkg = package_model(clf, Path("out/model"), sample_input=X_test[:5])  # doctest: +SKIP
    >>> pkg.flavor, pkg.files                                                  # doctest: +SKIP
    ('sklearn', {'MLmodel': '5d1e...', 'model.pkl': '9f2c...', ...})
    """
    dest_dir = Path(dest_dir)
    chosen = _choose_flavor(model, flavor)
    if onnx and chosen.name != "sklearn":
        raise Invalid(
            f"onnx=True converts scikit-learn models; got a model of flavor {chosen.name!r} "
            "(package an ONNX model itself with flavor='onnx')",
            field="onnx",
        )
    if onnx and sample_input is None:
        raise Invalid(
            "onnx=True needs sample_input, to type the ONNX inputs and measure parity",
            field="sample_input",
        )
    _prepare_destination(dest_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", dir=dest_dir.parent))
    try:
        package = _build(model, chosen, staging, sample_input, onnx)
        if dest_dir.exists():
            dest_dir.rmdir()
        os.replace(staging, dest_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return package


def _build(
    model: Any, flavor: Flavor, directory: Path, sample_input: Any, onnx: bool
) -> ModelPackage:
    metadata = flavor.save(model, directory, sample_input=sample_input)
    requirements = flavor.requirements(model)
    try:
        loaded = flavor.load(directory, metadata)
    except Exception as exc:
        raise Invalid(
            f"the saved {flavor.name} model could not be loaded back ({type(exc).__name__}: {exc})",
            field="model",
        ) from exc
    has_proba = flavor.has_proba(loaded)

    signature: Signature | None = None
    sample = None
    if sample_input is not None:
        sample = as_frame_or_array(sample_input)
        try:
            output = flavor.predict(loaded, sample)
        except LoopstackError:
            raise
        except Exception as exc:
            raise Invalid(
                f"the model failed to predict on sample_input ({type(exc).__name__}: {exc}); "
                "sample_input must be rows the model accepts",
                field="sample_input",
            ) from exc
        signature = infer_signature(sample, output)

    onnx_info = None
    if onnx and signature is not None:
        onnx_info = export_sklearn_onnx(
            loaded,
            signature,
            sample,
            directory,
            native_predict=lambda x: flavor.predict(loaded, x),
            native_proba=(lambda x: flavor.predict_proba(loaded, x)) if has_proba else None,
        )

    # Written last but one (before the manifest): it carries the signature found above.
    write_mlflow_files(directory, flavor, metadata, signature, requirements)
    package = ModelPackage(
        flavor=flavor.name,
        signature=signature,
        requirements=requirements,
        files=file_digests(directory),
        has_proba=has_proba,
        onnx_max_abs_diff=None if onnx_info is None else float(onnx_info["max_abs_diff"]),
        metadata=metadata,
        onnx=onnx_info,
    )
    digest = write_manifest(directory, package)
    return dataclasses.replace(package, manifest_sha256=digest)
