"""A model's signature: what goes in and what comes out.

Tabular input is an ordered list of columns with their dtypes; array input
is a dtype and a shape whose first (batch) dimension is ``-1``. The output is
always described as an array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopstack.errors import Invalid

from ._inputs import as_frame_or_array, dtype_name

__all__ = ["ColumnSpec", "Signature", "TensorSpec", "infer_signature"]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name and dtype name (``float64``, ``int64``, ``str``...)."""

    name: str
    dtype: str


@dataclass(frozen=True)
class TensorSpec:
    """An array: dtype name and shape, ``-1`` where the size varies (the batch)."""

    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tensor", "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(dtype=str(data["dtype"]), shape=tuple(int(d) for d in data["shape"]))

    @classmethod
    def of(cls, array: np.ndarray) -> TensorSpec:
        """The spec of ``array`` with its first dimension made variable."""
        shape = tuple(int(d) for d in array.shape)
        return cls(dtype=dtype_name(array.dtype), shape=(-1, *shape[1:]) if shape else ())


@dataclass(frozen=True)
class Signature:
    """Inputs (columns, or one array) and the output array of a model.

    >>> sig = Signature(inputs=(ColumnSpec("x", "float64"),), output=None)
    >>> Signature.from_dict(sig.to_dict()) == sig
    True
    """

    inputs: tuple[ColumnSpec, ...] | TensorSpec
    output: TensorSpec | None = None

    @property
    def is_tabular(self) -> bool:
        return not isinstance(self.inputs, TensorSpec)

    @property
    def columns(self) -> tuple[ColumnSpec, ...]:
        return () if isinstance(self.inputs, TensorSpec) else self.inputs

    def to_dict(self) -> dict[str, Any]:
        inputs: dict[str, Any]
        if isinstance(self.inputs, TensorSpec):
            inputs = self.inputs.to_dict()
        else:
            inputs = {
                "type": "columns",
                "columns": [{"name": c.name, "dtype": c.dtype} for c in self.inputs],
            }
        return {
            "inputs": inputs,
            "output": None if self.output is None else self.output.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        try:
            raw_inputs = data["inputs"]
            inputs: tuple[ColumnSpec, ...] | TensorSpec
            if raw_inputs["type"] == "columns":
                inputs = tuple(
                    ColumnSpec(name=str(c["name"]), dtype=str(c["dtype"]))
                    for c in raw_inputs["columns"]
                )
            elif raw_inputs["type"] == "tensor":
                inputs = TensorSpec.from_dict(raw_inputs)
            else:
                raise ValueError(f"unknown input type {raw_inputs['type']!r}")
            output = data.get("output")
            return cls(
                inputs=inputs, output=None if output is None else TensorSpec.from_dict(output)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid(
                "a signature must be {'inputs': {'type': 'columns'|'tensor', ...}, "
                f"'output': ...}}; got {data!r} ({exc})",
                field="signature",
            ) from exc


def infer_signature(sample_input: Any, output: Any = None) -> Signature:
    """The signature of ``sample_input`` and, if given, of the model's ``output`` on it.

    >>> infer_signature(np.zeros((3, 4), dtype="float32")).inputs
    TensorSpec(dtype='float32', shape=(-1, 4))
    """
    data = as_frame_or_array(sample_input)
    inputs: tuple[ColumnSpec, ...] | TensorSpec
    if isinstance(data, pd.DataFrame):
        inputs = tuple(
            ColumnSpec(name=str(name), dtype=dtype_name(dtype))
            for name, dtype in data.dtypes.items()
        )
    else:
        if data.ndim == 0:
            raise Invalid(
                "sample_input must have a batch dimension (rows); got a scalar",
                field="sample_input",
            )
        inputs = TensorSpec.of(data)
    out = None
    if output is not None:
        out_array = output.to_numpy() if isinstance(output, pd.DataFrame | pd.Series) else output
        out = TensorSpec.of(np.asarray(out_array))
    return Signature(inputs=inputs, output=out)
