"""Model classes the flavor tests package; importable, so pickles and state dicts find them."""

from __future__ import annotations

from typing import Any

import numpy as np

#: One entry per unpickling of a TripwireModel, to prove when deserialisation happened.
UNPICKLED: list[str] = []


class TripwireModel:
    """A linear pyfunc model that records every time it is unpickled."""

    def __init__(self, coef: np.ndarray, intercept: float = 0.0) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float64) @ self.coef + self.intercept

    def __setstate__(self, state: dict[str, Any]) -> None:
        UNPICKLED.append(type(self).__name__)
        self.__dict__.update(state)


class ScoringModel(TripwireModel):
    """A pyfunc model with predict_proba: a logistic score over two classes."""

    def predict_proba(self, inputs: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.predict_score(inputs)))
        return np.column_stack([1.0 - p, p])

    def predict_score(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float64) @ self.coef + self.intercept

    def predict(self, inputs: Any) -> np.ndarray:
        return (self.predict_score(inputs) > 0).astype(np.int64)
