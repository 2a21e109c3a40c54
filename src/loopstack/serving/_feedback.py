"""Feedback on earlier predictions: a label and/or reward per request id, as the
``POST /endpoints/{name}/feedback`` body (or a gRPC call) gives it, checked whole before
anything is recorded (``Answerer.feedback`` records it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loopstack.errors import Invalid, excerpt

__all__ = ["Feedback"]


@dataclass(frozen=True)
class Feedback:
    """A label and/or reward for an earlier prediction (``arm``: who answered, if known)."""

    request_id: str
    label: Any = None
    reward: float | None = None
    arm: str | None = None

    @classmethod
    def parse(cls, body: Any) -> list[Feedback]:
        """Feedback items from a JSON body: one object or a list of them; ``Invalid``
        naming the item and field that is wrong (nothing is recorded then)."""
        items = body if isinstance(body, list) else [body]
        if not items:
            raise Invalid("feedback is an object or a non-empty list of them; got []")
        parsed: list[Feedback] = []
        for i, item in enumerate(items):
            where = f"feedback[{i}]" if isinstance(body, list) else "feedback"
            if not isinstance(item, dict):
                raise Invalid(
                    f"{where} must be an object {{request_id, label?, reward?, arm?}}; "
                    f"got {excerpt(item)}",
                    field="body",
                )
            unknown = sorted(set(item) - {"request_id", "label", "reward", "arm"})
            if unknown:
                raise Invalid(
                    f"{where} has unknown field(s) {unknown}; expected request_id, label, "
                    "reward, arm",
                    field=unknown[0],
                )
            rid = item.get("request_id")
            if not isinstance(rid, str) or not rid or len(rid) > 128:
                raise Invalid(
                    f"{where}.request_id must be the text of a prediction's request id "
                    f"(1-128 characters); got {excerpt(rid)}",
                    field="request_id",
                )
            reward = item.get("reward")
            if reward is not None and (
                isinstance(reward, bool)
                or not isinstance(reward, (int, float))
                or not np.isfinite(reward)
            ):
                raise Invalid(
                    f"{where}.reward must be a number; got {excerpt(reward)}", field="reward"
                )
            label = item.get("label")
            if label is None and reward is None:
                raise Invalid(f"{where} needs a label or a reward; got neither", field="label")
            arm = item.get("arm")
            if arm is not None and not isinstance(arm, str):
                raise Invalid(f"{where}.arm must be text; got {excerpt(arm)}", field="arm")
            parsed.append(cls(rid, label, None if reward is None else float(reward), arm))
        return parsed
