"""What still uses a registered model: the deployments whose current arms name it."""

from __future__ import annotations

import json
from typing import cast

from sqlalchemy import Connection, Table, select

from loopstack.store.metadata.schema import DeploymentRow

__all__ = ["deployments_using"]

_D = cast(Table, DeploymentRow.__table__)


def deployments_using(conn: Connection, project_id: int, model: str) -> list[str]:
    """The names of the project's deployments with an arm on ``model`` now, sorted."""
    rows = conn.execute(select(_D.c.name, _D.c.config).where(_D.c.project_id == project_id))
    return sorted(
        r.name
        for r in rows
        if any(a.get("model") == model for a in json.loads(r.config).get("arms", []))
    )
