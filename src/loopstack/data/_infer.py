"""Propose a suite from a reference table: what it looks like now, with some slack."""

from __future__ import annotations

import math
from typing import Any

from loopstack.data._checks import Check
from loopstack.data._suite import Suite

__all__ = ["infer_suite"]

#: a string or boolean column with at most this many distinct values gets an allowed set
MAX_ALLOWED_VALUES = 20
#: ranges are widened by this share of the reference's p01..p99 spread on each side
RANGE_MARGIN = 0.1
#: the default PSI bound (0.1 is "small", 0.25 "large" in the usual reading)
DEFAULT_MAX_PSI = 0.2


def _null_bound(rate: float) -> float:
    return min(1.0, round(rate * 1.5 + 0.01, 6))


def _range(entry: dict[str, Any]) -> tuple[float, float] | None:
    q, lo, hi = entry.get("quantiles") or {}, entry.get("min"), entry.get("max")
    if lo is None or hi is None or q.get("p01") is None:
        return None
    spread = float(q["p99"]) - float(q["p01"])
    margin = RANGE_MARGIN * spread if spread > 0 else max(abs(float(hi)), 1.0) * RANGE_MARGIN
    low, high = min(float(lo), float(q["p01"]) - margin), max(float(hi), float(q["p99"]) + margin)
    if entry["kind"] == "integer":
        return float(math.floor(low)), float(math.ceil(high))
    return low, high


def infer_suite(
    reference: Any, *, name: str | None = None, max_psi: float = DEFAULT_MAX_PSI
) -> Suite:
    """A suite that ``reference`` passes and that a drifted or broken copy fails.

    Proposes: the schema; a null-rate bound per column (observed rate x 1.5 + 1 point);
    ranges from the p01/p99 quantiles with a margin (never narrower than the reference's
    min/max); allowed values for strings and booleans with few distinct values;
    uniqueness for id-like columns (integer or string, no nulls, all distinct);
    cardinality bounds for other strings; and a PSI distribution check per numeric and
    categorical column against the reference's profile.

    >>> suite = ls.infer_suite(train_df, name="train")
    >>> suite.validate(new_df).raise_for_failures()
    """
    from loopstack.data._checks import (
        AllowedValuesCheck,
        NullRateCheck,
        RangeCheck,
        SchemaCheck,
    )
    from loopstack.data._drift import CardinalityCheck, DistributionCheck, UniqueCheck
    from loopstack.data._profile import profile_table
    from loopstack.data._sources import to_arrow

    if hasattr(reference, "profile") and hasattr(reference, "digest"):  # a DatasetVersion
        profile, label = reference.profile, f"{reference.name}-v{reference.version}"
    else:
        profile, label = profile_table(to_arrow(reference)), "inferred"
    n = int(profile["num_rows"])
    cols: dict[str, Any] = profile["columns"]
    checks: list[Check] = [SchemaCheck({c: e["dtype"] for c, e in cols.items()})]
    for col, e in cols.items():
        kind = e["kind"]
        checks.append(NullRateCheck(col, _null_bound(e["nulls"] / n if n else 0.0)))
        id_like = (
            kind in ("integer", "string") and n > 1 and e["nulls"] == 0 and e.get("distinct") == n
        )
        if id_like:
            checks.append(UniqueCheck([col]))
            continue
        if kind in ("integer", "float"):
            bounds = _range(e)
            if bounds is not None:
                checks.append(RangeCheck(col, bounds[0], bounds[1]))
            hist = e.get("histogram")
            if hist and len(hist["edges"]) > 2:
                checks.append(
                    DistributionCheck(col, max_psi, edges=hist["edges"], counts=hist["counts"])
                )
        elif kind in ("string", "bool"):
            top = e.get("top") or []
            if e.get("distinct", 0) <= MAX_ALLOWED_VALUES and len(top) == e.get("distinct"):
                if top:
                    checks.append(AllowedValuesCheck(col, [t["value"] for t in top]))
            elif kind == "string":
                checks.append(CardinalityCheck(col, int(e["distinct"]), 0.5))
            if top and e["count"]:
                shown = sum(t["count"] for t in top)
                checks.append(
                    DistributionCheck(
                        col,
                        max_psi,
                        categories=[[t["value"], t["count"]] for t in top],
                        other=int(e["count"]) - shown,
                    )
                )
    return Suite(name or label, checks)
