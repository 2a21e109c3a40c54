"""A model version's recorded gates through a loopstack server:
``GET /api/v1/models/{name}/versions/{version}/gates``. ``gate_report`` picks it for an
http(s) tracking URI; the answer and the errors are those of the local store."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from loopstack.errors import Invalid
from loopstack.loop._gates_report import GateReport

if TYPE_CHECKING:
    from loopstack.store.remote import HttpClient

__all__ = ["RestGates"]


class RestGates:
    """Recorded gate outcomes through a server; the server checks the token's role (a
    viewer reads) in the project the client names."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def report(self, model_name: str, version: int | str) -> GateReport | None:
        """The version's latest recorded gate evaluation, or None if none was recorded;
        ``NotFound`` for an unknown model or version."""
        if not isinstance(model_name, str) or not model_name:
            raise Invalid(f"a model name is non-empty text; got {model_name!r}", field="name")
        path = f"/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"
        answer = self.client.call("GET", f"{path}/gates")
        return GateReport.from_dict(answer) if answer.get("recorded") else None
