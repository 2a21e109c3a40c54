"""ONNX models (an ``onnx.ModelProto`` or a path to a ``.onnx`` file), run with onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopstack.errors import Invalid

from ._flavor import Flavor
from ._inputs import as_frame_or_array
from ._requirements import pin

__all__ = ["OnnxFlavor", "OnnxPredictor", "open_onnx_session"]

_FILE = "model.onnx"

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def open_onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session over the model at ``path``."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """``predict``/``predict_proba`` over an onnxruntime session.

    The first output is the prediction; an output whose name mentions
    ``prob`` (``probabilities``, ``output_probability``) gives probabilities.
    ``output_ndim`` squeezes trailing size-1 axes so a ``(N, 1)`` regression
    output matches the ``(N,)`` its native model returned.
    """

    def __init__(self, session: Any, *, output_ndim: int | None = None) -> None:
        self.session = session
        self._inputs = list(session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        self._label = outputs[0]
        self._proba = next((n for n in outputs[1:] if "prob" in n.lower()), None)
        self._output_ndim = output_ndim

    @property
    def has_proba(self) -> bool:
        return self._proba is not None

    def _feeds(self, data: Any) -> dict[str, np.ndarray]:
        data = as_frame_or_array(data)
        if len(self._inputs) == 1:
            (spec,) = self._inputs
            array = data.to_numpy() if isinstance(data, pd.DataFrame) else data
            return {spec.name: self._cast(array, spec)}
        if not isinstance(data, pd.DataFrame):
            raise Invalid(
                f"this ONNX model takes one input per column "
                f"({', '.join(i.name for i in self._inputs)}); got an array",
                field="inputs",
            )
        missing = [i.name for i in self._inputs if i.name not in data.columns]
        if missing:
            raise Invalid(
                f"input is missing column(s) {missing} that this ONNX model expects", field="inputs"
            )
        return {i.name: self._cast(data[i.name].to_numpy().reshape(-1, 1), i) for i in self._inputs}

    @staticmethod
    def _cast(array: np.ndarray, spec: Any) -> np.ndarray:
        wanted = _NUMPY_TYPES.get(spec.type)
        if wanted is None or array.dtype == wanted:
            return array
        if wanted is np.object_:
            return array.astype(str).astype(object)
        return array.astype(wanted)

    def _squeeze(self, array: np.ndarray) -> np.ndarray:
        if self._output_ndim is not None:
            while array.ndim > self._output_ndim and array.shape[-1] == 1:
                array = array[..., 0]
        return array

    def predict(self, data: Any) -> np.ndarray:
        (result,) = self.session.run([self._label], self._feeds(data))
        return self._squeeze(np.asarray(result))

    def predict_proba(self, data: Any) -> np.ndarray:
        if self._proba is None:
            raise AttributeError("predict_proba")
        (result,) = self.session.run([self._proba], self._feeds(data))
        if isinstance(result, list):  # a ZipMap output: one {label: probability} per row
            return np.asarray([list(row.values()) for row in result], dtype=np.float64)
        return np.asarray(result)


def _is_model_proto(model: object) -> bool:
    cls = type(model)
    return cls.__name__ == "ModelProto" and cls.__module__.startswith("onnx")


class OnnxFlavor(Flavor):
    """An ``onnx.ModelProto`` or the path of a ``.onnx`` file."""

    name = "onnx"

    def matches(self, model: object) -> bool:
        if _is_model_proto(model):
            return True
        return (
            isinstance(model, str | Path)
            and str(model).lower().endswith(".onnx")
            and Path(model).is_file()
        )

    def save(self, model: Any, directory: Path, *, sample_input: Any = None) -> dict[str, Any]:
        if _is_model_proto(model):
            (directory / _FILE).write_bytes(model.SerializeToString())
        elif self.matches(model):
            shutil.copyfile(Path(model), directory / _FILE)
        else:
            raise Invalid(
                "the onnx flavor packages an onnx.ModelProto or the path of a .onnx file; "
                f"got {model!r:.80}",
                field="flavor",
            )
        return {"file": _FILE}

    def load(self, directory: Path, meta: dict[str, Any]) -> Any:
        return OnnxPredictor(open_onnx_session(directory / str(meta["file"])))

    def requirements(self, model: Any) -> list[str]:
        return [pin("onnxruntime")]

    def has_proba(self, loaded: Any) -> bool:
        return bool(loaded.has_proba)
