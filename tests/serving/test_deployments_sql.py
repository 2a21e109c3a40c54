"""The SQL store on SQLite and PostgreSQL: a change made from a stale read is refused,
so two replicas changing one deployment at once never lose an update."""

from __future__ import annotations

from typing import Any

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


def _churn_versions(n: int) -> Any:
    reg = ls.get_registry(actor="alice")
    for _ in range(n):
        reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    return reg


def test_a_change_from_a_stale_read_is_refused_and_the_other_change_stands() -> None:
    _churn_versions(3)
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


def test_revise_writes_the_arms_given_under_the_production_rule_and_audits() -> None:
    from loopstack.serving import Arm
    from loopstack.store.audit_log import LocalAuditLog

    reg = _churn_versions(2)
    reg.set_alias("churn", "production", 1, override=True)
    stores = open_stores()
    deployments = SqlDeployments(stores, actor="bob")
    current = deployments.create("api", "churn@production", stage="production")
    arms = [Arm("blue", "churn", "1", 90.0, "primary"), Arm("canary", "churn", "2", 10.0, "canary")]
    with pytest.raises(ls.Forbidden, match="churn version 2 is not approved for production"):
        deployments.revise(current, "canary", "canary", arms, comment="rollout 7")
    assert deployments.get("api").revision == 1  # refused: nothing written
    with pytest.raises(ls.Invalid, match="a revision's action is a short name"):
        deployments.revise(current, "", "canary", arms)
    got = deployments.revise(current, "canary", "canary", arms, comment="rollout 7", force=True)
    assert got.revision == 2 and [a.version for a in got.arms] == [1, 2]
    assert deployments.history("api")[-1].comment == "rollout 7"
    events = LocalAuditLog(stores.db).events(object_type="deployment", object_id="api")
    assert events[-1]["action"] == "deployment.canary"
    assert events[-1]["actor"] == "bob"
    with pytest.raises(ls.Conflict, match="changed meanwhile"):  # current is stale now
        deployments.revise(current, "canary", "canary", arms, force=True)
