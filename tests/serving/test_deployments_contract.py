"""One contract for deployments, whichever backend ``ls.deployments()`` reaches.

The same calls run against SQLite and PostgreSQL directly, and a live server (auth on,
a token per user) over each. Errors arrive as the same class with the same message;
every change is a revision, audited with who made it; a production endpoint takes only
approved versions unless an admin forces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import loopstack as ls
from loopstack.serving import Arm, Deployment
from loopstack.store import open_stores
from loopstack.store.audit_log import open_audit_log
from tests.conftest import ThreadedServer

#: user -> role in the default project (root, the first user, is the admin)
USERS = {"alice": "data-scientist", "bob": "ml-engineer", "carol": "ml-engineer", "vic": "viewer"}


@dataclass
class Backend:
    kind: str
    monkeypatch: pytest.MonkeyPatch
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def remote(self) -> bool:
        return self.kind.startswith("server")

    def act_as(self, user: str) -> None:
        """From now on, calls act as ``user`` (their token through a server)."""
        self.monkeypatch.setenv("LOOPSTACK_USER", user)
        if self.remote:
            self.monkeypatch.setenv("LOOPSTACK_TOKEN", self.tokens[user])


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "server-sqlite",
        pytest.param("server-postgresql", marks=pytest.mark.postgres),
    ]
)
def backend(
    request: pytest.FixtureRequest, ls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Deployments over each backend; the model ``churn`` has versions 1-3 (alice's),
    version 1 approved for production by carol. Calls then act as bob (an ml-engineer)."""
    from loopstack.auth import add_member, create_token, create_user

    if request.param.endswith("postgresql"):
        db_url = request.getfixturevalue("pg_url")
    else:
        db_url = f"sqlite:///{ls_home / 'loopstack.db'}"
    monkeypatch.setenv("LOOPSTACK_DB_URL", db_url)
    db = open_stores().db
    tokens = {"root": create_token(db, name="root", user="root")[0]}
    for user, role in USERS.items():
        create_user(db, user, actor="root")
        add_member(db, "default", user, role, actor="root")
        tokens[user] = create_token(db, name=user, user=user)[0]
    reg = ls.get_registry(actor="alice")
    for _ in range(3):
        reg.create_model_version("churn", source="runs:/x/model", files={"m.bin": "ab" * 32})
    reg.set_alias("churn", "champion", 2)
    request_id = ls.get_registry(actor="bob").request_promotion("churn", 1).request_id
    ls.get_registry(actor="carol").approve(request_id, comment="holdout AUC up")
    backend = Backend(request.param, monkeypatch, tokens)
    if not backend.remote:
        backend.act_as("bob")
        yield backend
        return
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        backend.act_as("bob")
        yield backend
        close_shared(server.url)


def _shape(d: Deployment) -> list[tuple[str, str, int | None, float, str]]:
    return [(a.name, a.model_ref, a.version, a.weight, a.role) for a in d.arms]


def test_every_policy_change_is_a_revision_and_rollback_restores_one_exactly(
    backend: Backend,
) -> None:
    dep = ls.deployments()
    created = dep.create("churn-api", "churn@champion")
    assert (created.policy, created.stage, created.revision) == ("single", "staging", 1)
    assert _shape(created) == [("blue", "churn@champion", 2, 100.0, "primary")]
    assert created.created_by == created.updated_by == "bob"

    switched = dep.set("churn-api", "churn/3")  # blue-green: the old one stays warm
    assert switched.policy == "blue-green" and switched.revision == 2
    assert _shape(switched) == [
        ("green", "churn/3", 3, 100.0, "primary"),
        ("blue", "churn@champion", 2, 0.0, "standby"),
    ]
    canary = dep.canary("churn-api", "churn/1", weight=5)
    assert _shape(canary) == [
        ("green", "churn/3", 3, 95.0, "primary"),
        ("canary", "churn/1", 1, 5.0, "canary"),
    ]
    promoted = dep.promote("churn-api")
    assert _shape(promoted) == [
        ("blue", "churn/1", 1, 100.0, "primary"),
        ("green", "churn/3", 3, 0.0, "standby"),
    ]
    shadowed = dep.shadow("churn-api", "churn/2")
    assert [a.role for a in shadowed.arms] == ["primary", "shadow"]
    split = dep.ab("churn-api", {"a": ("churn/1", 30), "b": ("churn/2", 70)})
    assert (split.policy, _shape(split)) == (
        "ab",
        [("a", "churn/1", 1, 30.0, "arm"), ("b", "churn/2", 2, 70.0, "arm")],
    )
    assert dep.get("churn-api") == split

    back = dep.rollback("churn-api", to=2)  # exactly revision 2, as revision 7
    assert back.revision == 7 and back.policy == "blue-green"
    assert _shape(back) == _shape(switched)
    again = dep.rollback("churn-api")  # the one before the latest: revision 6, the split
    assert (again.revision, again.policy, _shape(again)) == (8, "ab", _shape(split))

    history = dep.history("churn-api")
    assert [(r.revision, r.action, r.actor) for r in history] == [
        (1, "create", "bob"),
        (2, "set", "bob"),
        (3, "canary", "bob"),
        (4, "promote", "bob"),
        (5, "shadow", "bob"),
        (6, "ab", "bob"),
        (7, "rollback", "bob"),
        (8, "rollback", "bob"),
    ]
    assert history[1].arms == switched.arms and history[6].arms == switched.arms
    assert history[6].comment == "rolled back to revision 2"
    assert [d.name for d in dep.list_deployments()] == ["churn-api"]
    assert dep.revisions() == {"churn-api": 8}

    # every change is audited, with who made it
    log = open_audit_log()
    events = [
        (e["action"], e["object_id"], e["actor"]) for e in log.events(object_type="deployment")
    ]
    actions = [a for a, _, _ in events]
    assert actions == [
        "deployment.create",
        "deployment.set",
        "deployment.canary",
        "deployment.promote",
        "deployment.shadow",
        "deployment.ab",
        "deployment.rollback",
        "deployment.rollback",
    ]
    assert {(o, u) for _, o, u in events} == {("churn-api", "bob")}
    dep.delete("churn-api")
    with pytest.raises(ls.NotFound, match="no deployment named 'churn-api'"):
        dep.get("churn-api")
    assert log.events(object_type="deployment")[-1]["action"] == "deployment.delete"
    assert log.verify().ok


def test_bad_changes_are_refused_naming_what_is_wrong_and_change_nothing(
    backend: Backend,
) -> None:
    dep = ls.deployments()
    with pytest.raises(ls.NotFound, match="no registered model named 'ghost'"):
        dep.create("api", "ghost/1")
    with pytest.raises(ls.NotFound, match="model 'churn' has no alias 'nope'"):
        dep.create("api", "churn@nope")
    with pytest.raises(ls.NotFound, match="model 'churn' has no version 9"):
        dep.create("api", "churn/9")
    with pytest.raises(ls.Invalid, match=r"MODEL@ALIAS .* or MODEL/VERSION .*; got 'churn'"):
        dep.create("api", "churn")
    with pytest.raises(ls.Invalid, match="a deployment name must start with a letter or digit"):
        dep.create("/bad", "churn/1")
    with pytest.raises(ls.Invalid, match=r"a stage is one of \['staging', 'production'\]"):
        dep.create("api", "churn/1", stage="prod")
    assert dep.list_deployments() == []
    dep.create("api", "churn/1")
    with pytest.raises(ls.AlreadyExists, match="a deployment named 'api' already exists"):
        dep.create("api", "churn/2")
    with pytest.raises(ls.Invalid, match="above 0 and below 100; got 100"):
        dep.canary("api", "churn/2", weight=100)
    with pytest.raises(ls.Invalid, match=r"must sum to 100; got 90 \(a=40, b=50\)"):
        dep.ab("api", {"a": ("churn/1", 40), "b": ("churn/2", 50)})
    with pytest.raises(ls.NotFound, match="model 'churn' has no version 7"):
        dep.ab("api", {"a": ("churn/1", 50), "b": ("churn/7", 50)})
    with pytest.raises(ls.Invalid, match=r"strategy is one of \['thompson', 'epsilon'\]"):
        dep.bandit("api", {"a": "churn/1", "b": "churn/2"}, strategy="ucb")
    with pytest.raises(ls.Conflict, match="no challenger to promote"):
        dep.promote("api")
    with pytest.raises(ls.Invalid, match="has only revision 1: there is nothing to roll back"):
        dep.rollback("api")
    with pytest.raises(ls.NotFound, match="no deployment named 'nope'"):
        dep.set("nope", "churn/2")
    assert dep.get("api").revision == 1 and len(dep.history("api")) == 1
    dep.set("api", "churn/2")
    with pytest.raises(ls.Invalid, match="from 1 to 1; got 5"):
        dep.rollback("api", to=5)
    with pytest.raises(ls.Conflict, match="is not a bandit"):
        dep.record_reward("api", "blue", 1.0)


def test_production_takes_only_approved_versions_unless_an_admin_forces(
    backend: Backend,
) -> None:
    dep = ls.deployments()
    need = (
        r"churn version 3 is not approved for production \(its approval state is 'none' and "
        r"it holds no protected alias \['production'\]\): request an approval with "
        r"`loopstack models promote churn 3`"
    )
    with pytest.raises(ls.Forbidden, match=need):
        dep.create("prod-api", "churn/3", stage="production")
    prod = dep.create("prod-api", "churn@production", stage="production")  # approved: v1
    assert (prod.stage, _shape(prod)) == (
        "production",
        [("blue", "churn@production", 1, 100.0, "primary")],
    )
    with pytest.raises(ls.Forbidden, match=need):
        dep.canary("prod-api", "churn/3", weight=5)
    with pytest.raises(ls.Forbidden, match=need.replace("3", "2")):
        dep.shadow("prod-api", "churn/2")  # a shadow sees production traffic too
    assert dep.get("prod-api").revision == 1
    staging = dep.create("staging-api", "churn/3")  # staging takes any version
    assert staging.stage == "staging"
    if backend.remote:  # through a server the override is an admin's
        with pytest.raises(ls.Forbidden, match="force=true .* needs the 'admin' role"):
            dep.set("prod-api", "churn/3", force=True)
        backend.act_as("vic")
        with pytest.raises(ls.Forbidden):
            ls.deployments().create("viewer-api", "churn/1")
        assert [d.name for d in ls.deployments().list_deployments()] == ["prod-api", "staging-api"]
    backend.act_as("root")
    forced = ls.deployments().set("prod-api", "churn/3", force=True)
    assert forced.primary is not None and forced.primary.version == 3
    # the standby (v1, approved) does not serve: a rollback to revision 1 needs no force
    assert ls.deployments().rollback("prod-api").primary == prod.primary
    backend.act_as("bob")
    forced_event = [
        e
        for e in open_audit_log().events(object_type="deployment")
        if e["action"] == "deployment.set"
    ][-1]
    assert forced_event["actor"] == "root"


def test_a_bandit_learns_from_rewards_and_a_restart_does_not_forget(backend: Backend) -> None:
    dep = ls.deployments()
    dep.create("rec", "churn/1")
    made = dep.bandit("rec", {"a": "churn/1", "b": "churn/2"}, strategy="epsilon", epsilon=0.2)
    assert (made.policy, made.options) == ("bandit", {"strategy": "epsilon", "epsilon": 0.2})
    events_before = len(open_audit_log().events(limit=100_000))
    for reward in (1, 1, 0, 1):
        dep.record_reward("rec", "a", reward)
    got = dep.record_reward("rec", "b", 0.0)
    assert (got.arm, got.pulls, got.failures) == ("b", 1, 1.0)
    # rewards are data, not state changes: no audit event per reward
    assert len(open_audit_log().events(limit=100_000)) == events_before
    state = ls.deployments().bandit_state("rec")  # a fresh store: what a restart sees
    assert (state["a"].pulls, state["a"].successes, state["a"].failures) == (4, 3.0, 1.0)
    assert (state["a"].alpha, state["a"].beta, state["a"].mean_reward) == (4.0, 2.0, 0.75)
    assert state["b"].mean_reward == 0.0
    with pytest.raises(ls.Invalid, match="a reward is a number from 0 to 1; got 2"):
        dep.record_reward("rec", "a", 2)
    with pytest.raises(ls.Invalid, match=r"has no arm 'c'; its arms are \['a', 'b'\]"):
        dep.record_reward("rec", "c", 1.0)
    best = dep.promote("rec")  # the best mean reward wins
    assert best.primary == Arm("blue", "churn", "1", 100.0, "primary", 1)


def test_replicas_on_one_database_see_a_change_at_once(backend: Backend) -> None:
    one, two = ls.deployments(), ls.deployments()
    one.create("api", "churn/1")
    seen = two.revisions()
    one.set("api", "churn/2")
    assert two.revisions()["api"] == seen["api"] + 1
    current = two.get("api")
    assert current.primary is not None and current.primary.version == 2


def test_an_arm_follows_its_alias_but_production_only_to_an_approved_version(
    backend: Backend,
) -> None:
    from loopstack.serving import resolve_arm

    backend.act_as("alice")
    ls.get_registry().set_alias("churn", "stable", 1)  # an unprotected alias, on approved v1
    backend.act_as("bob")
    dep, reg = ls.deployments(), ls.get_registry()
    prod = dep.create("prod-api", "churn@stable", stage="production")
    staging = dep.create("staging-api", "churn@stable")
    backend.act_as("alice")
    reg = ls.get_registry()
    reg.set_alias("churn", "stable", 3)  # v3 is not approved
    assert resolve_arm(reg, staging, staging.arms[0]).version == 3
    assert resolve_arm(reg, prod, prod.arms[0]).version == 1  # keeps what was checked
    pinned = ls.deployments().get("prod-api")
    assert pinned.arms[0].version == 1 and pinned.arms[0].ref == "stable"


def test_version_numbers_are_plain_positive_integers(backend: Backend) -> None:
    dep = ls.deployments()
    for bad in ("churn/²", "churn/0", "churn/99999999999", "churn/-1"):
        with pytest.raises(ls.Invalid, match="MODEL@ALIAS .* or MODEL/VERSION"):
            dep.create("api", bad)
    assert dep.list_deployments() == []


def test_enrichment_is_a_revision_kept_by_routing_changes(backend: Backend) -> None:
    dep = ls.deployments()
    dep.create("api", "churn/1")
    with pytest.raises(ls.Invalid, match=r"'mode' is one of \['fail_closed', 'degraded'\]"):
        dep.set_enrichment("api", {"mode": "lenient"})
    with pytest.raises(ls.Invalid, match=r"no setting\(s\) \['default'\]"):
        dep.set_enrichment("api", {"default": {"x": 1}})
    assert dep.get("api").revision == 1
    set_ = dep.set_enrichment("api", {"mode": "degraded", "defaults": {"trips": 0}})
    assert set_.revision == 2 and _shape(set_) == _shape(dep.get("api"))
    assert set_.options["enrichment"]["defaults"] == {"trips": 0}
    assert dep.history("api")[-1].action == "enrichment"
    canary = dep.canary("api", "churn/2", weight=10)
    assert canary.options["enrichment"]["mode"] == "degraded"
    assert dep.rollback("api", to=1).options == {}
    assert "enrichment" not in dep.set_enrichment("api", None).options
    actions = [(e["action"], e["actor"]) for e in open_audit_log().events(object_type="deployment")]
    assert ("deployment.enrichment", "bob") in actions


def test_serving_options_are_a_revision_kept_by_later_changes(backend: Backend) -> None:
    dep = ls.deployments()
    dep.create("opt", "churn/1")
    tuned = dep.configure("opt", {"max_batch_size": 64, "batch_latency_ms": 5})
    assert (tuned.revision, tuned.options) == (2, {"max_batch_size": 64, "batch_latency_ms": 5})
    assert _shape(tuned) == _shape(dep.history("opt")[0])
    assert dep.history("opt")[-1].action == "configure"
    moved = dep.set("opt", "churn/2")  # a policy change keeps the serving options
    assert moved.options == tuned.options
    bandit = dep.bandit("opt", {"a": "churn/1", "b": "churn/2"}, strategy="epsilon", epsilon=0)
    assert bandit.options == {**tuned.options, "strategy": "epsilon", "epsilon": 0}
    cleared = dep.configure("opt", {"batch_latency_ms": None, "max_queue": 10})
    kept = {"max_batch_size": 64, "max_queue": 10}
    assert cleared.options == {**kept, "strategy": "epsilon", "epsilon": 0}
    assert dep.rollback("opt", to=1).options == {}  # a rollback restores exactly
    for options, message in [
        ({"max_batch_size": 0}, "'max_batch_size' must be an integer from 1 to 4096; got 0"),
        ({"batch_size": 8}, r"unknown serving option\(s\) \['batch_size'\]"),
        ({}, "non-empty object"),
    ]:
        with pytest.raises(ls.Invalid, match=message):
            dep.configure("opt", options)
    assert dep.get("opt").revision == 6  # the refusals wrote nothing
