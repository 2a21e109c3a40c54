"""The SQL store on SQLite and PostgreSQL: a change made from a stale read is refused,
so two replicas changing one deployment at once never lose an update."""

from __future__ import annotations

import pytest

import loopstack as ls
from loopstack.serving import Deployment, SqlDeployments
from loopstack.store import open_stores

pytestmark = pytest.mark.usefixtures("use_db")


class _Stale(SqlDeployments):
    """Reads the deployment as it was before another replica changed it."""

    snapshot: Deployment

    def get(self, name: str) -> Deployment:
        return self.snapshot


def test_a_change_from_a_stale_read_is_refused_and_the_other_change_stands() -> None:
    reg = ls.get_registry(actor="alice")
    for _ in range(3):
        reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    stores = open_stores()
    one = SqlDeployments(stores, actor="bob")
    one.create("api", "churn/1")
    late = _Stale(stores, actor="carol")
    late.snapshot = one.get("api")
    one.set("api", "churn/2")  # another replica got there first
    with pytest.raises(ls.Conflict, match=r"changed meanwhile \(revision 1 -> 2\)"):
        late.set("api", "churn/3")
    current = one.get("api")
    assert current.revision == 2 and current.primary is not None
    assert current.primary.version == 2 and current.updated_by == "bob"
    assert [r.actor for r in one.history("api")] == ["bob", "bob"]
