"""Authentication: hashed API tokens. Roles and projects plug in here later."""

from loopstack.auth._tokens import (
    Principal,
    TokenInfo,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)

__all__ = ["Principal", "TokenInfo", "create_token", "list_tokens", "revoke_token", "verify_token"]
