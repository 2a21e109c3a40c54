"""One served model called on a batch of requests: each request checked on its own, the
rows of many concatenated into one call, the outputs split back by row count.

``ModelCall.prepare`` turns one request's input into a ``Prepared`` block, checked
against the signature (a bad request is refused here, alone, before it joins a batch).
For a signature whose columns are all numbers it builds one 2-D float array straight
from the records, columns or tensors (no pandas per request); otherwise it checks with
``enforce_signature`` (a DataFrame or array per request). ``ModelCall.run`` answers a
batch: the blocks are concatenated, the model called once, and each request gets its
own rows back. If that call fails, each request of the batch is tried alone, so only
the request that broke it fails (with the model's error); a lone request gets the error.

Two shortcuts are decided once per model by a probe at setup, never assumed: an
scikit-learn model fitted on a DataFrame is given the float array itself (one pandas
frame less per batch: sklearn's frame checks cost milliseconds) when it answers a sample
the same either way, and a tree classifier whose ``predict`` is by definition
``classes_[argmax(predict_proba)]`` is called once (``predict_proba``), not twice.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid

if TYPE_CHECKING:
    from loopstack.serving._runtime import ServedModel

__all__ = ["ModelCall", "Prepared"]

log = logging.getLogger("loopstack.serving")

_NUMBERS = frozenset({float, int})
_NUMBER_KINDS = "fiu"
# scikit-learn classifiers whose predict() is classes_[argmax(predict_proba())] as written
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "HistGradientBoostingClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
    }
)
# sklearn warns when a frame-fitted model gets an array; the array is in the signature's
# column order, which is the fitted order (checked in _probe), so the warning says nothing
_NAMES_WARNING = "X does not have valid feature names"


@dataclass(frozen=True)
class Prepared:
    """One request's input, checked: a 2-D float array, or what ``enforce_signature`` gave."""

    data: Any
    rows: int


class ModelCall:
    """How one served model answers batches (see the module doc).

    >>> call = ModelCall(served)                       # doctest: +SKIP
    >>> outs = call.run([call.prepare(records)])       # doctest: +SKIP
    """

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        signature = served.signature
        self.columns: list[str] = [c.name for c in signature.columns] if signature else []
        self.float_dtype: np.dtype | None = None
        if self.columns:
            kinds = {_kind(c.dtype) for c in signature.columns}  # type: ignore[union-attr]
            dtypes = {c.dtype for c in signature.columns}  # type: ignore[union-attr]
            if kinds == {"f"}:
                # one float dtype: build in it; several: float64, enforce narrows later
                self.float_dtype = np.dtype(dtypes.pop() if len(dtypes) == 1 else "float64")
        #: the model takes the float array itself (else a DataFrame is built per batch)
        self.array_ok = False
        #: labels come from predict_proba (one model call instead of two)
        self.argmax_labels = False
        self._probe()

    # -- one request --------------------------------------------------------------------
    def prepare(self, inputs: Any) -> Prepared:
        """``inputs`` (records, columns, an array, a DataFrame) checked against the
        signature; ``Invalid`` saying what differs."""
        if self.float_dtype is not None:
            array = self._float_rows(inputs)
            if array is not None:
                return Prepared(array, len(array))
        from loopstack.registry.flavors import enforce_signature

        checked = enforce_signature(inputs, self.served.signature)
        return Prepared(checked, len(checked))

    def prepare_tensors(self, tensors: list[Any]) -> Prepared:
        """Open Inference Protocol input tensors (``_oip.InputTensor``) checked as
        ``prepare`` checks; the codec's rules (``model_input``) for anything but plain
        numeric columns."""
        if self.float_dtype is not None:
            array = self._float_tensors(tensors)
            if array is not None:
                return Prepared(array, len(array))
        from loopstack.serving._oip import model_input

        return self.prepare(model_input(tensors, self.served.signature))

    def _float_rows(self, inputs: Any) -> np.ndarray | None:
        """A 2-D array of the signature's float dtype, or None: let enforce_signature say
        what is wrong (or convert what this does not: strings, booleans, frames...)."""
        cols = self.columns
        n = len(cols)
        try:
            if isinstance(inputs, list):
                flat = [row[c] for row in inputs for c in cols]
                shape = (len(inputs), n)
                transpose = False
            elif isinstance(inputs, dict):
                values = [inputs[c] for c in cols]
                if len({len(v) for v in values}) != 1:
                    return None
                flat = [v for column in values for v in column]
                shape = (n, len(values[0]))
                transpose = True
            elif isinstance(inputs, np.ndarray):
                return self._float_array(inputs)
            else:
                return None
        except (KeyError, TypeError):
            return None
        if not flat or not set(map(type, flat)) <= _NUMBERS:
            return None
        array = np.array(flat, dtype=self.float_dtype).reshape(shape)
        return np.ascontiguousarray(array.T) if transpose else array

    def _float_array(self, array: np.ndarray) -> np.ndarray | None:
        if array.ndim == 1 and len(self.columns) == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[1] != len(self.columns) or not len(array):
            return None
        if array.dtype.kind not in _NUMBER_KINDS:
            return None
        return array.astype(self.float_dtype, copy=False)

    def _float_tensors(self, tensors: list[Any]) -> np.ndarray | None:
        if len(tensors) == 1 and tensors[0].name not in self.columns:
            return self._float_array(tensors[0].array)
        if sorted(t.name for t in tensors) != sorted(self.columns):
            return None
        by_name = {t.name: t.array for t in tensors}
        columns = []
        for name in self.columns:
            column = by_name[name]
            if column.ndim == 2 and column.shape[1] == 1:
                column = column[:, 0]
            if column.ndim != 1 or column.dtype.kind not in _NUMBER_KINDS:
                return None
            columns.append(column)
        if len({len(c) for c in columns}) != 1 or not len(columns[0]):
            return None
        return np.column_stack(columns).astype(self.float_dtype, copy=False)

    # -- a batch ------------------------------------------------------------------------
    def run(self, batch: list[Prepared]) -> list[dict[str, np.ndarray] | Exception]:
        """Each request's outputs (``predict``, ``predict_proba``?), or its own error."""
        try:
            outputs = self._call(self._concat([p.data for p in batch]))
            return _split(outputs, [p.rows for p in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
            if len(batch) == 1:
                return [exc]
            return [self._alone(p) for p in batch]

    def _alone(self, prepared: Prepared) -> dict[str, np.ndarray] | Exception:
        try:
            return _split(self._call(self._concat([prepared.data])), [prepared.rows])[0]
        except Exception as exc:  # noqa: BLE001 - this request's own error
            return exc

    def _concat(self, blocks: list[Any]) -> Any:
        if len(blocks) == 1:
            data = blocks[0]
        elif all(isinstance(b, np.ndarray) for b in blocks):
            data = np.concatenate(blocks)
        else:
            import pandas as pd

            from loopstack.registry.flavors import enforce_signature

            frames = [b if isinstance(b, pd.DataFrame) else self._frame(b) for b in blocks]
            # concatenated categoricals may fall back to object: check the batch once more
            return enforce_signature(pd.concat(frames, ignore_index=True), self.served.signature)
        if isinstance(data, np.ndarray) and self.float_dtype is not None and not self.array_ok:
            return self._frame(data)
        return data

    def _frame(self, array: np.ndarray) -> Any:
        import pandas as pd

        frame = pd.DataFrame(array, columns=self.columns, copy=False)
        signature = self.served.signature
        dtypes = {c.name: c.dtype for c in signature.columns} if signature else {}
        if any(str(frame[c].dtype) != d for c, d in dtypes.items()):
            frame = frame.astype(dtypes)
        return frame

    def _call(self, data: Any) -> dict[str, np.ndarray]:
        model = self.served.model
        if self.argmax_labels:
            scores = model.predict_proba(data, checked=True)
            classes = model.model.classes_
            return {"predict": classes[np.argmax(scores, axis=1)], "predict_proba": scores}
        labels, proba = model.predict_both(data, checked=True)
        outputs = {"predict": labels}
        if proba is not None:
            outputs["predict_proba"] = proba
        return outputs

    # -- the probe ----------------------------------------------------------------------
    def _probe(self) -> None:
        """Decide ``array_ok`` and ``argmax_labels`` by asking the model, on the warm-up
        sample, both ways; any difference or error keeps the plain way."""
        from loopstack.serving._runtime import warm_sample

        served = self.served
        if served.model.flavor != "sklearn" or served.model.uses_onnx:
            return
        sample = warm_sample(served.signature)
        if sample is None:
            return
        estimator = served.model.model
        try:
            reference = self._call(sample)
            if self.float_dtype is not None and _fitted_in_order(estimator, self.columns):
                warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)
                array = np.asarray(sample, dtype=self.float_dtype)
                self.array_ok = _same(self._call(array), reference)
            proba = reference.get("predict_proba")
            classes = getattr(estimator, "classes_", None)
            if (
                type(estimator).__name__ in _ARGMAX_CLASSIFIERS
                and proba is not None
                and isinstance(classes, np.ndarray)
                and classes.ndim == 1
                and proba.ndim == 2
                and proba.shape[1] == len(classes)
            ):
                self.argmax_labels = True
                if not _same(self._call(sample), reference):
                    self.argmax_labels = False
        except Exception as exc:  # noqa: BLE001 - keep the plain way
            log.debug("model %s: the fast path probe failed (%s)", served.model_uri, exc)
            self.array_ok = self.argmax_labels = False


def _kind(dtype: str) -> str:
    try:
        return np.dtype(dtype).kind
    except TypeError:
        return "O"


def _fitted_in_order(estimator: Any, columns: list[str]) -> bool:
    """The estimator saw these columns in this order at fit (or was fitted on arrays)."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return hasattr(estimator, "n_features_in_")
    return [str(n) for n in names] == columns


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _split(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[Any]:
    """Each request's rows of every output, by the requests' row counts."""
    total = sum(sizes)
    for name, values in outputs.items():
        if len(values) != total:
            raise Invalid(
                f"the model answered {len(values)} rows of {name!r} for {total} input rows",
                field="outputs",
            )
    if len(sizes) == 1:
        return [outputs]
    ends = np.cumsum(sizes)
    starts = ends - np.asarray(sizes)
    return [
        {name: values[s:e] for name, values in outputs.items()}
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
