"""Reading a package back: verify every digest, check requirements, then deserialise."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from loopstack.errors import Invalid, LoopstackError, NotFound

from ._catalog import get_flavor
from ._digests import verify_files
from ._enforce import enforce_signature
from ._flavor import Flavor
from ._manifest import ModelPackage, read_manifest
from ._mlflow_package import is_mlflow_package, load_mlflow_package
from ._onnx import OnnxPredictor, open_onnx_session
from ._requirements import check_requirements
from ._signature import Signature

__all__ = ["LoadedModel", "load_package"]


class LoadedModel:
    """A model read back from a package, predicting on signature-checked input.

    ``model`` is the framework's own object (an estimator, a booster, a
    TorchScript module, an onnxruntime-backed predictor).
    """

    def __init__(
        self,
        package: ModelPackage,
        flavor: Flavor,
        model: Any,
        *,
        onnx: OnnxPredictor | None = None,
    ) -> None:
        self.package = package
        self.model = model
        self._flavor = flavor
        self._onnx = onnx

    def __repr__(self) -> str:
        runtime = " via onnxruntime" if self.uses_onnx else ""
        return f"<LoadedModel flavor={self.flavor!r}{runtime}>"

    @property
    def flavor(self) -> str:
        return self.package.flavor

    @property
    def signature(self) -> Signature | None:
        return self.package.signature

    @property
    def uses_onnx(self) -> bool:
        """Whether predictions come from the package's ONNX copy (``prefer_onnx=True``)."""
        return self._onnx is not None

    @property
    def has_proba(self) -> bool:
        if self._onnx is not None:
            return self._onnx.has_proba
        return self._flavor.has_proba(self.model)

    def predict(self, inputs: Any) -> np.ndarray:
        """Predictions for ``inputs`` (DataFrame, array, dict of columns or list of row dicts).

        >>> loaded.predict([{"x1": 1.0, "x2": 2.0}])   # doctest: +SKIP
        """
        checked = enforce_signature(inputs, self.signature)
        if self._onnx is not None:
            return self._run(self._onnx.predict, checked)
        return self._run(lambda x: self._flavor.predict(self.model, x), checked)

    def predict_proba(self, inputs: Any, *, checked: bool = False) -> np.ndarray:
        """Class probabilities for ``inputs``; ``Invalid`` if the model has none
        (``checked=True``: the input already passed the signature, see ``predict_both``)."""
        if not self.has_proba:
            raise Invalid(
                f"this model (flavor {self.flavor}) has no predict_proba; "
                "use predict, or package a classifier that has one",
                field="predict_proba",
            )
        ready = inputs if checked else enforce_signature(inputs, self.signature)
        if self._onnx is not None:
            return self._run(self._onnx.predict_proba, ready)
        return self._run(lambda x: self._flavor.predict_proba(self.model, x), ready)

    def predict_both(
        self, inputs: Any, *, checked: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, class probabilities or None) with the input checked once: what a
        server answering both asks, at the cost of one signature check, not two.

        ``checked=True`` skips the check: for input ``enforce_signature`` already gave
        (or built to the same rules), such as a server's batch of checked requests.
        """
        if not checked:
            inputs = enforce_signature(inputs, self.signature)
        return self._predict_both(inputs)

    def _predict_both(self, checked: Any) -> tuple[np.ndarray, np.ndarray | None]:
        if self._onnx is not None:
            labels = self._run(self._onnx.predict, checked)
            proba = self._run(self._onnx.predict_proba, checked) if self.has_proba else None
            return labels, proba
        labels = self._run(lambda x: self._flavor.predict(self.model, x), checked)
        if not self.has_proba:
            return labels, None
        return labels, self._run(lambda x: self._flavor.predict_proba(self.model, x), checked)

    def _run(self, call: Any, checked: Any) -> np.ndarray:
        try:
            return np.asarray(call(checked))
        except LoopstackError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            # The signature passed (or there is none): the model itself rejected the input.
            raise Invalid(
                f"the {self.flavor} model rejected the input ({type(exc).__name__}: {exc})",
                field="inputs",
            ) from exc


def load_package(
    directory: Path | str,
    *,
    expected_files: Mapping[str, str] | None = None,
    prefer_onnx: bool = False,
    tolerated: Collection[str] = (),
) -> LoadedModel:
    """Load the package in ``directory`` after checking every file's sha256.

    ``expected_files`` are the digests recorded when the package was
    registered (``ModelPackage.files``, optionally with the manifest's own
    digest under ``"loopstack-model.json"``); without them the manifest's own
    list is used. A package in MLflow's layout (an ``MLmodel`` file, no manifest) is
    checked against ``expected_files`` and loaded by ``load_mlflow_package``. Any
    mismatch, missing or extra file raises ``ArtifactCorrupted`` before anything is
    deserialised. A missing required package raises ``Invalid``; a different
    major.minor version warns.
    ``prefer_onnx`` predicts with the package's ONNX copy when it has one.
    ``tolerated`` names unrecorded files allowed beside the package (never read).

    >>> model = load_package(path, expected_files=version.files)   # doctest: +SKIP
    >>> model.predict(frame)                                        # doctest: +SKIP
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise NotFound(f"no model package at {directory}: expected a directory", field="path")
    if is_mlflow_package(directory):  # logged by the mlflow client: its own loader
        return load_mlflow_package(directory, expected_files)  # type: ignore[no-any-return]
    package = read_manifest(directory)
    if expected_files is None:
        verify_files(directory, package.files, tolerated=tolerated)
    else:
        verify_files(directory, expected_files, listed=package.files, tolerated=tolerated)
    flavor = get_flavor(package.flavor)

    onnx_info = package.onnx
    if prefer_onnx and onnx_info is not None:
        check_requirements(onnx_info.get("requirements", []))
        output_ndim = None
        if package.signature is not None and package.signature.output is not None:
            output_ndim = len(package.signature.output.shape)
        onnx_path = directory / str(onnx_info["file"])
        session = _translate_load_error(package, lambda: open_onnx_session(onnx_path))
        predictor = OnnxPredictor(session, output_ndim=output_ndim)
        return LoadedModel(package, flavor, predictor, onnx=predictor)

    check_requirements(package.requirements)
    model = _translate_load_error(package, lambda: flavor.load(directory, package.metadata))
    return LoadedModel(package, flavor, model)


def _translate_load_error(package: ModelPackage, load: Any) -> Any:
    try:
        return load()
    except LoopstackError:
        raise
    except Exception as exc:  # frameworks raise anything when their format changed
        raise Invalid(
            f"the {package.flavor} model could not be loaded with the installed packages "
            f"({type(exc).__name__}: {exc}); it needs {', '.join(package.requirements)}",
            field="model",
        ) from exc
