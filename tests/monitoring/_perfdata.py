"""Generated data with a known truth for the performance tests: a logistic model's
inputs and labels over time, optionally with concept drift after a time T."""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2026-01-01T00:00:00Z")
COEF = np.array([1.5, -2.0])


def logistic_data(n: int, rng: np.random.Generator, *, start: pd.Timestamp = START, hours: int = 1):
    """Inputs x0, x1 ~ N(0, 1), labels drawn from a logistic model, ts spread over ``hours``."""
    x = rng.normal(size=(n, 2))
    p = 1 / (1 + np.exp(-(x @ COEF + 0.3)))
    y = (rng.random(n) < p).astype(int)
    ts = start + pd.to_timedelta(np.sort(rng.random(n)) * hours * 3600, unit="s")
    return pd.DataFrame({"ts": ts, "x0": x[:, 0], "x1": x[:, 1], "label": y})


def scored(model, data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with the model's prediction and proba_0, proba_1."""
    proba = model.predict_proba(data[["x0", "x1"]].to_numpy())
    out = data.copy()
    out["prediction"] = proba.argmax(axis=1)
    out["proba_0"], out["proba_1"] = proba[:, 0], proba[:, 1]
    return out


def flip_after(data: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Concept drift: after ``t``, labels flip where x0 > 0 (inputs unchanged)."""
    out = data.copy()
    region = (out["ts"] >= t) & (out["x0"] > 0)
    out.loc[region, "label"] = 1 - out.loc[region, "label"]
    return out
