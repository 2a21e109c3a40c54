"""The loopstack error tree.

Every error loopstack raises on purpose derives from ``LoopstackError`` and
carries the HTTP status the server answers with::

    LoopstackError (500)
     +-- NotFound (404)           an id or name that does not exist
     +-- Invalid (422)            input that breaks a rule; nothing was written
     |    +-- ArtifactCorrupted   a stored artifact whose sha256 no longer matches
     |    |    +-- Tampered       a record that differs from what the audit log signed
     |    +-- ValidationFailed    data broke one or more checks of a validation suite
     |    +-- TooLarge (413)      a request body over the server's limit
     +-- Conflict (409)           the object's state forbids the change
     |    +-- AlreadyExists       a name that is taken
     |    +-- GateFailed          a model version that did not pass its gates
     +-- Forbidden (403)          authenticated, but the role is not enough
     +-- Unauthenticated (401)    no token, or a token that is unknown or revoked
     +-- RateLimited (429)        a caller over its request rate; retry after Retry-After
     +-- Overloaded (503)         the store stayed busy past every retry
     +-- StoreUnavailable (503)   a backend could not be reached
     |    +-- FeaturesUnavailable a served model's features could not be read fresh
     +-- NotReady (503)           a served model still loading, or failed to load
     +-- StepFailed (500)         a pipeline step that failed after its retries
     |    +-- StepTimeout (504)   a pipeline step that ran past its timeout

Foreign exceptions are translated at the boundary (``raise ... from exc``).
Messages say what was expected and what came.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "ArtifactCorrupted",
    "Conflict",
    "FeaturesUnavailable",
    "GateFailed",
    "Forbidden",
    "Invalid",
    "LoopstackError",
    "NotFound",
    "NotReady",
    "Overloaded",
    "RateLimited",
    "StepFailed",
    "StepTimeout",
    "StoreUnavailable",
    "TooLarge",
    "Tampered",
    "Unauthenticated",
    "ValidationFailed",
    "excerpt",
]

#: the most characters of a caller's value an error message quotes
EXCERPT_CHARS = 80


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, saying how long it was: what an error
    message quotes of what came, so a 50 MB value gives a short message, not a 50 MB one.

    >>> excerpt("x" * 1000, 12)
    "'xxxxxxxxxx…(1002 characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}…({len(text)} characters)"


class LoopstackError(Exception):
    """Root of every deliberate loopstack error."""

    status_code: int = 500
    #: MLflow's error code for the same condition, used by the MLflow-compatible routes.
    mlflow_code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": type(self).__name__, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class NotFound(LoopstackError):
    status_code = 404
    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class Invalid(LoopstackError):
    status_code = 422
    mlflow_code = "INVALID_PARAMETER_VALUE"


class ArtifactCorrupted(Invalid):
    """The bytes read back do not hash to the digest recorded when they were written."""

    status_code = 500
    mlflow_code = "DATA_LOSS"


class Tampered(ArtifactCorrupted):
    """A stored record (a model version's package digests, say) no longer matches what the
    keyed audit log recorded when it was made: it was changed behind loopstack's back."""


class ValidationFailed(Invalid):
    """Data broke one or more checks of a validation suite; the message names every one."""


class TooLarge(Invalid):
    """A request body over the server's limit; the message names the limit and its setting."""

    status_code = 413


class Conflict(LoopstackError):
    status_code = 409
    mlflow_code = "INVALID_STATE"


class AlreadyExists(Conflict):
    mlflow_code = "RESOURCE_ALREADY_EXISTS"


class GateFailed(Conflict):
    """A model version that did not pass its gates; the message names each failed gate."""


class Forbidden(LoopstackError):
    status_code = 403
    mlflow_code = "PERMISSION_DENIED"


class Unauthenticated(LoopstackError):
    status_code = 401
    mlflow_code = "UNAUTHENTICATED"


class RateLimited(LoopstackError):
    """A caller over its request rate (a serving replica's ``--rate-limit``); the answer's
    ``Retry-After`` says how many seconds until the next request is let through."""

    status_code = 429
    mlflow_code = "REQUEST_LIMIT_EXCEEDED"


class Overloaded(LoopstackError):
    status_code = 503
    mlflow_code = "TEMPORARILY_UNAVAILABLE"


class StoreUnavailable(LoopstackError):
    status_code = 503
    mlflow_code = "TEMPORARILY_UNAVAILABLE"


class FeaturesUnavailable(StoreUnavailable):
    """An enriching endpoint failed closed: the online store failed, or a feature was
    stale or missing with no default. ``enrichment`` says what happened (in the body)."""

    def __init__(
        self, message: str, *, field: str | None = None, enrichment: dict[str, object]
    ) -> None:
        super().__init__(message, field=field)
        self.enrichment = enrichment

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["enrichment"] = self.enrichment
        return body


class NotReady(LoopstackError):
    """A serving endpoint whose model is still loading (or failed to load): retry later."""

    status_code = 503
    mlflow_code = "TEMPORARILY_UNAVAILABLE"


class StepFailed(LoopstackError):
    """A pipeline step that raised on every try; the message names the step and its error."""


class StepTimeout(StepFailed):
    """A pipeline step that ran past its ``timeout_s`` and was stopped."""

    status_code = 504
    mlflow_code = "DEADLINE_EXCEEDED"
