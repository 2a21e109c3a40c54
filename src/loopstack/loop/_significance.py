"""Is the challenger's change real? A paired bootstrap of the metric difference.

Both models predicted the same rows; each resample draws rows with replacement and
scores both models on the same draw, so what the rows have in common cancels out and
only the models' difference varies. Resamples are row counts (a ``(B, n)`` matrix) and
every metric is computed for all of them at once (``_gates_metrics.weighted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopstack.loop._gates_metrics import Predictions, weighted

__all__ = ["Bootstrap", "paired_bootstrap"]

#: the most cells of one block of resample counts (memory stays near 8 bytes x this)
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class Bootstrap:
    """The resampled change (in the better direction: positive means the challenger is
    better), how often it did not clear ``null``, and its confidence interval."""

    p_value: float  #: share of resamples whose change is <= null (smoothed: (k+1)/(B+1))
    ci_low: float
    ci_high: float
    null: float  #: the change the test tries to exceed (0: "any improvement")
    resamples: int  #: resamples where both values were defined
    level: float  #: the confidence level of the interval (1 - significance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "ci": [self.ci_low, self.ci_high],
            "ci_level": self.level,
            "null": self.null,
            "resamples": self.resamples,
        }


def _resample_counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """``b`` resamples of ``n`` rows as how many times each row was drawn."""
    # int32 draws are cheaper to make; a block holds at most _BLOCK_CELLS < 2**31 cells
    offsets = np.arange(b, dtype=np.int64)[:, None] * n
    if b * n < 2**31:
        draws = rng.integers(0, n, size=(b, n), dtype=np.int32) + offsets.astype(np.int32)
    else:
        draws = rng.integers(0, n, size=(b, n), dtype=np.int64) + offsets
    return np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def paired_bootstrap(
    metric: str,
    challenger: Predictions,
    champion: Predictions,
    *,
    higher_is_better: bool,
    relative: bool = False,
    null: float = 0.0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    significance: float = 0.05,
) -> Bootstrap:
    """Resample the rows ``n_bootstrap`` times (seeded), score both models on each draw.

    The change is ``challenger - champion`` (negated for lower-is-better metrics; divided
    by the champion's absolute value with ``relative``). ``p_value`` is the share of
    resamples where the change is at most ``null``: small means the challenger's change
    beats ``null`` beyond what resampling noise explains.

    >>> paired_bootstrap("accuracy", new, old, higher_is_better=True).p_value  # doctest: +SKIP
    """
    n = int(challenger.y.size)
    rng = np.random.default_rng(seed)
    block = max(1, min(n_bootstrap, _BLOCK_CELLS // max(n, 1)))
    changes: list[np.ndarray] = []
    done = 0
    sign = 1.0 if higher_is_better else -1.0
    while done < n_bootstrap:
        b = min(block, n_bootstrap - done)
        w = _resample_counts(rng, b, n)
        new, old = weighted(metric, w, challenger), weighted(metric, w, champion)
        change = sign * (new - old)
        if relative:
            scale = np.abs(old)
            out = np.full(b, np.nan)
            np.divide(change, scale, out=out, where=scale != 0)
            change = out
        changes.append(change)
        done += b
    all_changes = np.concatenate(changes) if changes else np.array([])
    valid = all_changes[np.isfinite(all_changes)]
    level = 1.0 - significance
    if valid.size == 0:
        return Bootstrap(1.0, float("nan"), float("nan"), null, 0, level)
    k = int(np.sum(valid <= null))
    low, high = np.quantile(valid, [significance / 2, 1 - significance / 2])
    return Bootstrap(
        (k + 1) / (valid.size + 1), float(low), float(high), float(null), int(valid.size), level
    )
