"""Open the project's triggers where the configuration says: through a server's
``/api/v1/loop`` for an http(s) tracking URI, else the metadata store directly. Same
methods, entities and errors either way (the server decides who may do what)."""

from __future__ import annotations

import builtins
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loopstack.errors import Invalid
from loopstack.loop._firings import FiringView
from loopstack.loop._trigger_store import StoredTrigger, Switches
from loopstack.loop._triggers import Trigger

if TYPE_CHECKING:
    from loopstack.loop._trigger_store import TriggerStore
    from loopstack.store.remote import HttpClient

__all__ = ["RestTriggers", "triggers"]


def _stored(data: dict[str, Any]) -> StoredTrigger:
    trigger = Trigger(data["name"], data["kind"], data["pipeline"], data["params"], data["spec"])
    return StoredTrigger(
        int(data["trigger_id"]),
        0,  # through a server a project is named, not numbered
        trigger,
        bool(data["enabled"]),
        dict(data.get("state") or {}),
        str(data.get("created_by") or ""),
        int(data.get("created_at") or 0),
    )


class RestTriggers(Switches):
    """``TriggerStore`` through a loopstack server; the acting user is the token's. The
    server resolves a new trigger's pipeline on its own machine."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def _call(self, method: str, path: str = "", **kw: Any) -> Any:
        return self.client.call(method, f"/loop{path}", **kw)

    @staticmethod
    def _name(name: str) -> str:
        if not isinstance(name, str) or not name:
            raise Invalid(f"a trigger name is non-empty text; got {name!r}", field="name")
        return quote(name, safe="")

    def add(self, trigger: Trigger) -> StoredTrigger:
        """Store ``trigger`` (enabled); Invalid when its pipeline does not import on the
        server, Conflict when the project has a trigger of that name."""
        if not isinstance(trigger, Trigger):
            raise Invalid(f"add() takes a Trigger; got {type(trigger).__name__} instead")
        return _stored(self._call("POST", "/triggers", json=trigger.to_dict()))

    def get(self, name: str) -> StoredTrigger:
        """The trigger ``name``; NotFound if there is none."""
        from loopstack.errors import NotFound

        for stored in self.list():
            if stored.name == name:
                return stored
        raise NotFound(f"no trigger named {name!r} in this project")

    def list(self) -> builtins.list[StoredTrigger]:
        """Every trigger of the project, by name."""
        return [_stored(t) for t in self._call("GET", "/triggers")["triggers"]]

    def remove(self, name: str) -> None:
        """Delete the trigger and its firings."""
        self._call("DELETE", f"/triggers/{self._name(name)}")

    def set_enabled(self, name: str, enabled: bool) -> StoredTrigger:
        """Turn the trigger on or off."""
        switch = "enable" if enabled else "disable"
        return _stored(self._call("POST", f"/triggers/{self._name(name)}/{switch}"))

    def fire_manual(
        self, name: str, reason: str = "", *, request_id: str | None = None
    ) -> int | None:
        """Record a firing of ``name`` now; a retried request fires once (one request id
        goes with every retry)."""
        body = {"reason": reason, "request_id": request_id or uuid.uuid4().hex}
        answer = self._call("POST", f"/triggers/{self._name(name)}/fire", json=body)
        return None if answer.get("firing_id") is None else int(answer["firing_id"])

    def firings(self, name: str | None = None, limit: int = 50) -> builtins.list[FiringView]:
        """The project's firings (of one trigger, if named), newest first."""
        answer = self._call("GET", "/status", params={"limit": limit, "trigger": name})
        return [FiringView(**f) for f in answer["firings"]]


def triggers(
    *, actor: str | None = None, project: str | int | None = None
) -> TriggerStore | RestTriggers:
    """The project's triggers: through the server for an http(s) tracking URI, else the
    metadata store directly.

    >>> ls.loop.triggers().fire_manual("nightly", "new labels")   # doctest: +SKIP
    """
    from loopstack.auth._open import open_in_project

    def remote(client: HttpClient) -> TriggerStore | RestTriggers:
        return RestTriggers(client)

    def local(stores: Any, who: str, pid: int) -> TriggerStore | RestTriggers:
        from loopstack.loop._trigger_store import TriggerStore

        return TriggerStore(stores, project_id=pid, actor=who)

    return open_in_project(remote, local, actor=actor, project=project)
