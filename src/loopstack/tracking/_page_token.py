"""Opaque page tokens for searches that page by offset (tracking, and the MLflow routes)."""

from __future__ import annotations

import base64
import json

from loopstack.errors import Invalid

__all__ = ["decode_token", "encode_token"]


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    """The offset a token stands for (0 for none); Invalid for a token we did not issue."""
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(
            f"page_token is not one this server issued: {token!r}", field="page_token"
        ) from exc
    if offset < 0:
        raise Invalid(f"page_token is not one this server issued: {token!r}", field="page_token")
    return offset
