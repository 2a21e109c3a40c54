"""W4's data: a reference and a current frame, 50 columns, 13 drifts of known size.

40 numeric columns (``num_00`` .. ``num_39``) and 10 categorical ones (``cat_0`` ..
``cat_9``, strings). Thirteen columns carry an injected drift:

- mean shifts of 0.01, 0.02, 0.05, 0.1, 0.2, 0.5 and 1 reference standard deviation,
- scale changes of 5 %, 20 % and 50 % (the standard deviation times 1.05, 1.2, 1.5,
  about the same mean),
- category moves of total-variation distance 0.02, 0.05 and 0.2 (mass taken from the
  most frequent category and spread over the others in proportion to their share).

The drifted numeric columns are Gaussian (random location and scale), so "d standard
deviations" has one meaning. The 30 undrifted numeric columns cycle through other
families (Gaussian, log-normal, uniform, exponential, Student-t(5), gamma(2), a bimodal
mixture, and Poisson(30) integer counts, whose many ties a KS test must handle), some
with 2 % missing values at the same rate on both sides. The categorical columns have
Zipf-like shares over 6 to 40 categories (undrifted) or 3 to 5 (drifted). Reference and current are
independent samples of ``rows`` rows each; the same ``seed`` gives the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SHIFTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SCALES = (0.05, 0.2, 0.5)
TVS = (0.02, 0.05, 0.2)
N_NUMERIC, N_CATEGORICAL = 40, 10
NUMERIC = [f"num_{i:02d}" for i in range(N_NUMERIC)]
CATEGORICAL = [f"cat_{i}" for i in range(N_CATEGORICAL)]
_FAMILIES = ("normal", "lognormal", "uniform", "exponential", "t5", "gamma2", "bimodal", "poisson")
_NULL_RATE = 0.02


@dataclass(frozen=True)
class Injected:
    """One injected drift: its column, kind (mean_shift, scale, tv) and population size."""

    column: str
    kind: str
    size: float

    @property
    def label(self) -> str:
        """How the table names it: ``mean +0.05 sd``, ``scale x1.20``, ``TV 0.05``."""
        if self.kind == "mean_shift":
            return f"mean +{self.size:g} sd"
        if self.kind == "scale":
            return f"scale x{1 + self.size:.2f}"
        return f"TV {self.size:g}"


def injected() -> list[Injected]:
    """The 13 drifts and their columns: every 4th numeric column, cat_0, cat_3, cat_6."""
    numeric = [("mean_shift", s) for s in SHIFTS] + [("scale", s) for s in SCALES]
    out = [Injected(NUMERIC[4 * i], kind, size) for i, (kind, size) in enumerate(numeric)]
    out += [Injected(CATEGORICAL[3 * i], "tv", tv) for i, tv in enumerate(TVS)]
    return out


def _numeric(rng: np.random.Generator, family: str, n: int) -> np.ndarray:
    if family == "normal":
        return rng.normal(0.0, 1.0, n)
    if family == "lognormal":
        return rng.lognormal(0.0, 0.5, n)
    if family == "uniform":
        return rng.uniform(0.0, 1.0, n)
    if family == "exponential":
        return rng.exponential(1.0, n)
    if family == "t5":
        return rng.standard_t(5, n)
    if family == "gamma2":
        return rng.gamma(2.0, 1.0, n)
    if family == "bimodal":
        return np.where(rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.0, 1.0, n))
    return rng.poisson(30.0, n).astype(np.int64)  # poisson: integer counts, ties


def _shares(rng: np.random.Generator, k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** rng.uniform(0.3, 1.2)
    return weights / weights.sum()


def moved_shares(p: np.ndarray, tv: float) -> np.ndarray:
    """``p`` with ``tv`` of mass taken from its largest share and spread over the rest
    in proportion: the total-variation distance between the two is exactly ``tv``."""
    top = int(np.argmax(p))
    if not 0 <= tv <= p[top]:
        raise ValueError(f"tv must be in [0, {p[top]}] for these shares; got {tv}")
    q = p.copy()
    rest = np.arange(p.size) != top
    q[rest] += tv * p[rest] / p[rest].sum()
    q[top] -= tv
    return q


def generate(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[Injected]]:
    """The reference and current frames (``rows`` rows each) and the injected drifts."""
    # parameters (locations, scales, shares) from one stream, samples from another: the
    # columns' distributions do not depend on ``rows``
    prm, rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    drifts = {d.column: d for d in injected()}
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    undrifted = 0
    for name in NUMERIC:
        d = drifts.get(name)
        if d is not None:
            loc, sd = prm.uniform(-50, 50), prm.lognormal(0.0, 1.5)
            ref[name] = rng.normal(loc, sd, rows)
            if d.kind == "mean_shift":
                cur[name] = rng.normal(loc + d.size * sd, sd, rows)
            else:
                cur[name] = rng.normal(loc, sd * (1 + d.size), rows)
            continue
        family = _FAMILIES[undrifted % len(_FAMILIES)]
        undrifted += 1
        loc, scale = prm.uniform(-10, 10), prm.lognormal(0.0, 1.0)
        a, b = _numeric(rng, family, rows), _numeric(rng, family, rows)
        if family != "poisson":
            a, b = loc + scale * a, loc + scale * b
        if undrifted % 5 == 0:  # 2 % missing, on both sides alike (6 columns)
            a, b = a.astype(float), b.astype(float)
            a[rng.random(rows) < _NULL_RATE] = np.nan
            b[rng.random(rows) < _NULL_RATE] = np.nan
        ref[name], cur[name] = a, b
    ks = [4, 6, 10, 3, 8, 12, 5, 20, 40, 7]  # the drifted cat_0, cat_3, cat_6: 4, 3, 5
    for name, k in zip(CATEGORICAL, ks, strict=True):
        p = _shares(prm, k)
        d = drifts.get(name)
        q = moved_shares(p, d.size) if d is not None else p
        cats = np.array([f"{name[-1]}_{j:02d}" for j in range(k)], dtype=object)
        ref[name] = cats[rng.choice(k, rows, p=p)]
        cur[name] = cats[rng.choice(k, rows, p=q)]
    return pd.DataFrame(ref), pd.DataFrame(cur), list(drifts.values())
