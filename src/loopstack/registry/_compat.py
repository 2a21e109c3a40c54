"""Is it safe to point an alias at a new version? Compare the two versions' input signatures."""

from __future__ import annotations

from typing import Any

__all__ = ["feature_columns", "input_columns", "signature_breaks"]


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


def signature_breaks(
    current: dict[str, Any] | None,
    candidate: dict[str, Any] | None,
    *,
    fed: tuple[set[str], set[str]] = (set(), set()),
) -> list[str]:
    """Reasons the candidate cannot take the current version's traffic unchanged (empty: safe).

    ``fed``: the input columns of each version (current, candidate) that an enriching
    endpoint reads from the feature store (its training set's features): callers do not
    send those, so adding or dropping one is no break for them.
    """
    old, new = input_columns(current), input_columns(candidate)
    if old is None or new is None:
        return []
    old = {c: t for c, t in old.items() if c not in fed[0] or c in new}
    new = {c: t for c, t in new.items() if c not in fed[1] or c in old}
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


def feature_columns(conn: Any, project_id: int, tags: dict[str, str]) -> set[str]:
    """The input columns a version (by its ``tags``) takes from the feature store: the
    features of the training set its ``loopstack.training_set`` tag names, when the
    feature store built that set (empty otherwise)."""
    from sqlalchemy import select

    from loopstack.store.metadata.schema import DatasetVersion

    name, _, number = tags.get("loopstack.training_set", "").rpartition("/")
    if not name or not number.isdigit():
        return set()
    table = DatasetVersion.__table__
    source = conn.execute(
        select(table.c.source_uri).where(
            table.c.project_id == project_id,
            table.c.name == name,
            table.c.version == int(number),
        )
    ).scalar()
    prefix = "feature_store:"
    if not source or not source.startswith(prefix):
        return set()
    refs = [r for r in source[len(prefix) :].split(",") if ":" in r]
    return {r.split(":", 1)[1] for r in refs} | {r.replace(":", "__", 1) for r in refs}
