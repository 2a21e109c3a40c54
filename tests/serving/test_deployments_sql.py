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


def test_each_version_a_deployment_serves_is_in_its_lineage() -> None:
    reg = ls.get_registry(actor="alice")
    for _ in range(2):
        reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    deployments = SqlDeployments(open_stores(), actor="bob")
    deployments.create("api", "churn/1")
    deployments.canary("api", "churn/2", weight=10)
    deployments.rollback("api", to=1)  # the edges of revisions past stay: lineage is history
    graph = ls.lineage("deployment:api")
    assert set(graph.upstream) >= {"model_version:churn/1", "model_version:churn/2"}
    assert ("model_version:churn/2", "deployment:api", "deployed") in graph.edges
    down = ls.lineage("model_version:churn/1")
    assert "deployment:api" in down.downstream


def test_a_model_a_deployment_serves_cannot_be_deleted() -> None:
    reg = ls.get_registry(actor="alice")
    reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    reg.create_model_version("other", source="runs:/x/model", files={"m.bin": "cd" * 32})
    deployments = SqlDeployments(open_stores(), actor="bob")
    deployments.create("api", "churn/1")
    with pytest.raises(ls.Conflict, match=r"model 'churn' cannot be deleted: deployment\(s\)"):
        reg.delete_registered_model("churn")
    assert reg.get_registered_model("churn").name == "churn"  # nothing changed
    deployments.set("api", "other/1")  # churn/1 stays as the warm standby: still refused
    with pytest.raises(ls.Conflict, match=r"deployment\(s\) \['api'\] serve it"):
        reg.delete_registered_model("churn")
    deployments.delete("api")
    reg.delete_registered_model("churn")  # no longer served
    with pytest.raises(ls.NotFound):
        reg.get_registered_model("churn")
