"""W5's limit: a bare Starlette endpoint that parses the JSON records and calls
``predict_proba`` on them, nothing else (no validation, no logging, no metrics).

    W5_MODEL=model.joblib W5_COLUMNS=f00,f01,... uvicorn _w5_bare:app --factory

Started by ``bench/w5_serving.py`` in ``bench/.venv`` (one uvicorn worker, no access log).
"""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app() -> Starlette:
    """The app: ``POST /predict`` with ``{"records": [{...}]}`` answers the probabilities."""
    model: Any = joblib.load(os.environ["W5_MODEL"])
    columns = os.environ["W5_COLUMNS"].split(",")

    async def predict(request: Request) -> Response:
        records = json.loads(await request.body())["records"]
        rows = np.array([[r[c] for c in columns] for r in records], dtype=np.float64)
        proba = model.predict_proba(rows).tolist()
        return Response(json.dumps({"probabilities": proba}), media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])
