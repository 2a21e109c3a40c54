"""The fairness gate: the metric per group, the gap between groups, the worst group."""

from __future__ import annotations

from typing import Any

import numpy as np

from loopstack.loop._gates import Fairness
from loopstack.loop._gates_metrics import Predictions, point

__all__ = ["check_fairness"]


def _key(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def check_fairness(
    fairness: Fairness,
    groups: np.ndarray,
    challenger: Predictions,
    champion: Predictions | None = None,
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, reason, evidence) of ``fairness`` over rows labelled by ``groups``."""
    declared = (
        list(fairness.groups)
        if fairness.groups is not None
        else sorted({g for g in groups.tolist() if g is not None and g == g}, key=str)
    )
    per_group: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    values: dict[str, float] = {}
    for g in declared:
        mask = groups == g
        rows = int(mask.sum())
        entry: dict[str, Any] = {"rows": rows, "value": None}
        per_group[_key(g)] = entry
        if rows == 0:
            problems.append(f"group {_key(g)!r} has no rows in the evaluation set")
            continue
        value = point(fairness.metric, challenger.subset(mask))
        entry["value"] = value
        if champion is not None:
            entry["champion"] = point(fairness.metric, champion.subset(mask))
        if value is None:
            problems.append(f"{fairness.metric} cannot be computed for group {_key(g)!r}")
        else:
            values[_key(g)] = value
    evidence: dict[str, Any] = {
        "metric": fairness.metric,
        "group": fairness.group,
        "max_gap": fairness.max_gap,
        "floor": fairness.floor,
        "per_group": per_group,
    }
    if not values:
        problems.append(f"no group of {fairness.group!r} has a {fairness.metric} value")
        return False, "; ".join(problems), evidence
    higher = fairness.higher_is_better
    best = max(values, key=values.__getitem__) if higher else min(values, key=values.__getitem__)
    worst = min(values, key=values.__getitem__) if higher else max(values, key=values.__getitem__)
    gap = abs(values[best] - values[worst])
    evidence.update(gap=gap, best_group=best, worst_group=worst)
    col = fairness.group
    notes = [
        f"gap {_fmt(gap)} ({col}={best} {_fmt(values[best])} vs "
        f"{col}={worst} {_fmt(values[worst])})"
    ]
    if fairness.max_gap is not None and gap > fairness.max_gap:
        problems.append(f"{notes[0]} > max_gap {_fmt(fairness.max_gap)}")
    if fairness.floor is not None:
        below = [
            g for g, v in values.items() if (v < fairness.floor if higher else v > fairness.floor)
        ]
        word = "below" if higher else "above"
        if below:
            problems.append(
                f"{', '.join(f'{col}={g} {_fmt(values[g])}' for g in below)} {word} the floor "
                f"{_fmt(fairness.floor)}"
            )
        else:
            notes.append(f"no group {word} the floor {_fmt(fairness.floor)}")
    if problems:
        return False, "; ".join(problems), evidence
    return True, "; ".join(notes), evidence
