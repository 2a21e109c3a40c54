"""Is it safe to point an alias at a new version? Compare the two versions' input signatures."""

from __future__ import annotations

from typing import Any

__all__ = ["input_columns", "signature_breaks"]


def input_columns(signature: dict[str, Any] | None) -> dict[str, str] | None:
    """``{column: dtype}`` of a tabular input signature, or None when it has no named columns."""
    if not signature:
        return None
    inputs = signature.get("inputs", signature)
    cols = inputs.get("columns") if isinstance(inputs, dict) else None
    if not cols:
        return None
    out: dict[str, str] = {}
    for col in cols:
        if isinstance(col, dict):
            out[str(col.get("name"))] = str(col.get("dtype", col.get("type", "")))
        else:
            out[str(col)] = ""
    return out


def signature_breaks(current: dict[str, Any] | None, candidate: dict[str, Any] | None) -> list[str]:
    """Reasons the candidate cannot take the current version's traffic unchanged (empty: safe)."""
    old, new = input_columns(current), input_columns(candidate)
    if old is None or new is None:
        return []
    reasons = []
    dropped = [c for c in old if c not in new]
    added = [c for c in new if c not in old]
    if dropped:
        reasons.append(f"drops input(s) {dropped} that callers of the current version send")
    if added:
        reasons.append(
            f"requires new input(s) {added} that callers of the current version do not send"
        )
    changed = [
        f"{c} ({old[c]} -> {new[c]})"
        for c in old
        if c in new and old[c] and new[c] and old[c] != new[c]
    ]
    if changed:
        reasons.append(f"changes the dtype of {changed}")
    return reasons
