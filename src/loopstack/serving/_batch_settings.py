"""How an endpoint batches: ``BatchSettings``, from ``loopstack serve``'s flags (handed
to each worker in ``BATCHING_ENV``) and overridden by a deployment's serving options."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from loopstack.errors import Invalid

__all__ = ["BATCHING_ENV", "BatchSettings"]

#: the batch settings ``loopstack serve`` hands each worker (JSON, BatchSettings fields)
BATCHING_ENV = "LOOPSTACK_SERVING_BATCHING"


@dataclass(frozen=True)
class BatchSettings:
    """How an endpoint batches: at most ``max_batch_size`` requests per model call, a
    batch formed under load lingering at most ``max_latency_ms``, at most ``max_queue``
    requests waiting (beyond: 503).

    >>> BatchSettings(max_batch_size=64).with_options({"batch_latency_ms": 5})
    BatchSettings(max_batch_size=64, max_latency_ms=5.0, max_queue=256)
    """

    max_batch_size: int = 32
    max_latency_ms: float = 2.0
    max_queue: int = 256

    def __post_init__(self) -> None:
        from loopstack.serving._deployments import validate_serving_options

        validate_serving_options(self.to_options())

    def to_options(self) -> dict[str, Any]:
        """These settings as a deployment's option keys."""
        return {
            "max_batch_size": self.max_batch_size,
            "batch_latency_ms": self.max_latency_ms,
            "max_queue": self.max_queue,
        }

    def with_options(self, options: Mapping[str, Any]) -> BatchSettings:
        """These settings overridden by a deployment's ``options`` (those it names)."""
        changes: dict[str, Any] = {}
        if "max_batch_size" in options:
            changes["max_batch_size"] = options["max_batch_size"]
        if "batch_latency_ms" in options:
            changes["max_latency_ms"] = float(options["batch_latency_ms"])
        if "max_queue" in options:
            changes["max_queue"] = options["max_queue"]
        return replace(self, **changes) if changes else self

    def to_env(self) -> str:
        """The JSON ``BATCHING_ENV`` carries."""
        return json.dumps(self.to_options())

    @classmethod
    def from_env(cls) -> BatchSettings:
        """The settings a worker was started with (the defaults when none)."""
        raw = os.environ.get(BATCHING_ENV)
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise Invalid(f"{BATCHING_ENV} is not JSON ({exc})", field=BATCHING_ENV) from exc
        if not isinstance(doc, dict):
            raise Invalid(f"{BATCHING_ENV} must be a JSON object", field=BATCHING_ENV)
        return cls().with_options(doc)
