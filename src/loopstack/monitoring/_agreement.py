"""Shadow agreement: whether a shadow arm answered a model row as the primary did.

A shadow's copy of a request is logged with the primary's request id (``shadow``
true), so the two answers of one model row meet on ``(request_id, row)`` of the flat
prediction-log rows (``flatten_predictions``). Predictions compare as their text, so a
label ``1`` and ``1.0`` differ as the caller would see them differ. The rollout's
guardrails and the deployment page's live charts both read agreement from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["agreeing_rows"]

_KEY = ["request_id", "row"]


def agreeing_rows(shadow: pd.DataFrame, primary: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``shadow`` that ``primary`` answered too (same request id and row),
    with their columns, ``prediction_primary`` and ``agrees`` (bool: same prediction).
    Both frames need ``request_id``, ``row`` and ``prediction``.

    >>> agreeing_rows(candidate, champion)["agrees"].mean()   # doctest: +SKIP
    0.97
    """
    theirs = primary[[*_KEY, "prediction"]].drop_duplicates(_KEY)
    both = shadow.merge(theirs, on=_KEY, suffixes=("", "_primary"))
    both["agrees"] = both["prediction"].astype(str) == both["prediction_primary"].astype(str)
    return both
