"""Access to one project's served models: a bearer token checked against a minimum role.

A serving replica answers for the models of one project (the project it resolves its
models and deployments in). With auth on, every request but health and metrics carries a
token of a user holding at least ``minimum`` (viewer: read access) in that project.
The answer for a token is cached for ``ttl_s`` seconds (5 by default), so the hot path
costs a dictionary lookup, not a database read; a token revoked, a user disabled or a
role removed is refused at the latest ``ttl_s`` later.
"""

from __future__ import annotations

import hashlib
import threading
import time

from loopstack.auth._roles import Role, role_of
from loopstack.auth._tokens import Principal, verify_token
from loopstack.errors import Forbidden, Unauthenticated
from loopstack.store.metadata import Database

__all__ = ["ProjectAccess"]

_MAX_CACHED = 10_000  # distinct tokens remembered at once; beyond, the cache starts over


class ProjectAccess:
    """Who may call a server answering for project ``project_id``: a token whose user holds
    ``minimum`` or higher there (a global admin does everywhere).

    >>> access = ProjectAccess(db, project_id=0, project_name="default")  # doctest: +SKIP
    >>> access.check("Bearer lst_...").user                               # doctest: +SKIP
    'alice'
    """

    def __init__(
        self,
        db: Database,
        project_id: int,
        *,
        project_name: str = "",
        minimum: Role = Role.VIEWER,
        ttl_s: float = 5.0,
    ) -> None:
        self.db = db
        self.project_id = project_id
        self.project_name = project_name or f"#{project_id}"
        self.minimum = minimum
        self.ttl_s = ttl_s
        # sha256 of the header -> (valid until, the principal or the refusal's message)
        self._cache: dict[str, tuple[float, Principal | str]] = {}
        self._lock = threading.Lock()

    def cached(self, header: str) -> Principal | None:
        """The principal of ``header`` if it was checked within ``ttl_s`` (no database
        read); ``Forbidden`` again for a token refused within ``ttl_s``; None: not known."""
        found = self._cache.get(_key(header))
        if found is None or found[0] < time.monotonic():
            return None
        if isinstance(found[1], str):
            raise Forbidden(found[1])  # a fresh error each time: no traceback piles up
        return found[1]

    def check(self, header: str) -> Principal:
        """The principal an ``Authorization`` header names, if it may call this server:
        ``Unauthenticated`` (401) for no token or an unknown, revoked or disabled one,
        ``Forbidden`` (403) for a token whose user holds less than ``minimum`` in the
        project (or a token scoped to another project). Reads the database."""
        known = self.cached(header)
        if known is not None:
            return known
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated(
                "this serving endpoint requires a bearer token: send 'Authorization: "
                "Bearer <token>' (create one with `loopstack token create`)"
            )
        principal = verify_token(self.db, secret.strip())
        if principal is None:
            raise Unauthenticated("the bearer token is unknown, revoked, or its user is disabled")
        role = role_of(self.db, principal, self.project_id)
        if role is not None and role >= self.minimum:
            self._remember(header, principal)
            return principal
        held = "no role" if role is None else f"the role {role.value!r}"
        scoped = principal.project_id is not None and principal.project_id != self.project_id
        refusal = (
            f"this server serves the models of project {self.project_name!r}, which need the "
            f"role {self.minimum.value!r} or higher; {principal.user!r} holds {held} there"
            + (" (the token is scoped to another project)" if scoped else "")
        )
        self._remember(header, refusal)
        raise Forbidden(refusal)

    def _remember(self, header: str, answer: Principal | str) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[_key(header)] = (time.monotonic() + self.ttl_s, answer)


def _key(header: str) -> str:
    # the header holds the secret: keep only its digest in memory
    return hashlib.sha256(header.encode("utf-8", "surrogatepass")).hexdigest()
