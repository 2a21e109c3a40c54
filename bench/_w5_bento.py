"""W5's BentoML peer: one service per variant, the same model and the same JSON records.

    W5_MODEL=model.joblib W5_COLUMNS=f00,f01,... bentoml serve _w5_bento:Plain
    ... bentoml serve _w5_bento:Batched      # adaptive batching (@bentoml.api(batchable=True))

Imported only inside ``bench/.venv-bentoml`` by ``bench/w5_serving.py``: one worker, no
access log, ``POST /predict`` with ``{"records": [{...}]}`` answering the probabilities.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import numpy as np

COLUMNS = os.environ.get("W5_COLUMNS", "").split(",")
#: the batching variant's knobs (BentoML's own defaults: max_batch_size 100, max_latency_ms 60000)
MAX_BATCH = int(os.environ.get("W5_BENTO_MAX_BATCH", "32"))
MAX_LATENCY_MS = int(os.environ.get("W5_BENTO_MAX_LATENCY_MS", "60000"))
CONFIG: dict[str, Any] = {"workers": 1, "logging": {"access": {"enabled": False}}}


def _proba(model: Any, records: list[dict[str, float]]) -> list[list[float]]:
    rows = np.array([[r[c] for c in COLUMNS] for r in records], dtype=np.float64)
    return model.predict_proba(rows).tolist()  # type: ignore[no-any-return]


@bentoml.service(**CONFIG)
class Plain:
    """One request, one ``predict_proba``."""

    def __init__(self) -> None:
        self.model = joblib.load(os.environ["W5_MODEL"])

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> list[list[float]]:
        """The class probabilities of each record."""
        return _proba(self.model, records)


@bentoml.service(**CONFIG)
class Batched:
    """Requests grouped by BentoML's adaptive batching into one ``predict_proba``."""

    def __init__(self) -> None:
        self.model = joblib.load(os.environ["W5_MODEL"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, records: list[dict[str, float]]) -> list[list[float]]:
        """The class probabilities of each record (of every request in the batch)."""
        return _proba(self.model, records)
