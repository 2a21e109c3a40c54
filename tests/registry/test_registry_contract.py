"""One contract for the registry, whichever backend ``ls.get_registry()`` reaches.

The same calls run against four backends: SQLite and PostgreSQL directly, and a live
server (with auth on, tokens per user) over SQLite and over PostgreSQL. Models are
logged the way users log them (``run.log_model`` of a fitted sklearn pipeline), and
errors must arrive as the same class with the same message everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from loopstack.store import open_stores
from loopstack.store.audit_log import open_audit_log
from tests.conftest import ThreadedServer

sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")

#: user -> role in the default project (root, the first user, is the admin)
USERS = {"alice": "data-scientist", "bob": "ml-engineer", "carol": "ml-engineer", "vic": "viewer"}


@dataclass
class Backend:
    """Where the registry lives, and how a test acts as one user or another."""

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


def _users(db_url: str) -> dict[str, str]:
    from loopstack.auth import add_member, create_token, create_user
    from loopstack.config import settings

    assert settings().db_url == db_url
    db = open_stores().db
    tokens = {"root": create_token(db, name="root", user="root")[0]}
    for user, role in USERS.items():
        create_user(db, user, actor="root")
        add_member(db, "default", user, role, actor="root")
        tokens[user] = create_token(db, name=user, user=user)[0]
    return tokens


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
    """The registry over each backend in turn; the caller acts as alice (a data scientist)."""
    if request.param.endswith("postgresql"):
        db_url = request.getfixturevalue("pg_url")
    else:
        db_url = f"sqlite:///{ls_home / 'loopstack.db'}"
    monkeypatch.setenv("LOOPSTACK_DB_URL", db_url)
    backend = Backend(request.param, monkeypatch, _users(db_url))
    if not backend.remote:
        backend.act_as("alice")
        yield backend
        return
    from loopstack.server import create_app
    from loopstack.store.remote import close_shared

    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    with ThreadedServer(create_app()) as server:
        monkeypatch.setenv("LOOPSTACK_TRACKING_URI", server.url)
        backend.act_as("alice")
        yield backend
        close_shared(server.url)


def _iris(columns: list[str] | None = None) -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    X = iris.frame.drop(columns="target")
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    if columns is not None:
        X = X[columns]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return model.fit(X, iris.target.to_numpy()), X


def _log(name: str, model: Any, X: pd.DataFrame) -> tuple[ls.ActiveRun, Any]:
    with ls.start_run(experiment="contract") as run:
        ls.log_input(X, name="iris")
        version = run.log_model(model, name=name, sample_input=X.head(5))
    return run, version


def test_models_versions_and_tags(backend: Backend) -> None:
    reg = ls.get_registry()
    created = reg.create_registered_model("churn", description="who leaves", tags={"team": "a"})
    assert (created.name, created.description, created.tags) == (
        "churn",
        "who leaves",
        {"team": "a"},
    )
    assert created.created_by == "alice" and created.latest_version is None
    with pytest.raises(ls.AlreadyExists, match="a registered model named 'churn' already exists"):
        reg.create_registered_model("churn")
    with pytest.raises(ls.Invalid, match="a model name must start with a letter or digit"):
        reg.create_registered_model("/bad")

    clf, X = _iris()
    run, v1 = _log("churn", clf, X)
    _, v2 = _log("churn", clf, X)
    assert (v1.version, v2.version, v1.run_id, v1.flavor) == (1, 2, run.run_id, "sklearn")
    assert {"model.pkl", "MLmodel", "loopstack-model.json"} <= set(v1.files)
    assert all(len(sha) == 64 for sha in v1.files.values())
    assert v1.files == reg.get_model_version("churn", 1).files
    assert [v.version for v in reg.search_model_versions(name="churn")] == [2, 1]
    assert [v.version for v in reg.search_model_versions(run_id=run.run_id)] == [1]

    reg.set_model_version_tag("churn", 1, "stage", "candidate")
    reg.set_registered_model_tag("churn", "owner", "alice")
    reg.update_model_version("churn", 1, description="first")
    one = reg.get_model_version("churn", "1")
    assert (one.tags, one.description) == ({"stage": "candidate"}, "first")
    reg.delete_model_version_tag("churn", 1, "stage")
    reg.delete_registered_model_tag("churn", "team")
    model = reg.update_registered_model("churn", description="churners")
    assert (model.tags, model.description, model.latest_version) == (
        {"owner": "alice"},
        "churners",
        2,
    )
    assert [m.name for m in reg.search_registered_models(name_like="chu%")] == ["churn"]

    with pytest.raises(ls.NotFound, match="no registered model named 'ghost'"):
        reg.get_registered_model("ghost")
    with pytest.raises(ls.NotFound, match="model 'churn' has no version 9"):
        reg.get_model_version("churn", 9)
    with pytest.raises(ls.Invalid, match="a model version must be an integer; got 'x' instead"):
        reg.get_model_version("churn", "x")
    with pytest.raises(ls.NotFound, match="model 'churn' version 1 has no tag 'nope'"):
        reg.delete_model_version_tag("churn", 1, "nope")
    with pytest.raises(ls.NotFound, match="no run with id 'feedbeef'"):
        reg.create_model_version("churn", source="x", files={}, run_id="feedbeef")

    renamed = reg.update_registered_model("churn", new_name="churn-v2")
    assert renamed.name == "churn-v2" and renamed.latest_version == 2
    backend.act_as("bob")  # deleting a model is an ml-engineer's
    ls.get_registry().delete_registered_model("churn-v2")
    with pytest.raises(ls.NotFound, match="no registered model named 'churn-v2'"):
        reg.get_registered_model("churn-v2")


def test_aliases_history_and_signature_refusal(backend: Backend) -> None:
    reg = ls.get_registry()
    clf, X = _iris()
    _log("iris", clf, X)
    _log("iris", clf, X)
    narrow, Xn = _iris(["sepal_length", "sepal_width"])
    _log("iris", narrow, Xn)  # version 3 takes two of the four inputs

    assert reg.set_alias("iris", "staging", 1).to_version == 1
    move = reg.set_alias("iris", "staging", 2, reason="retrained")
    assert (move.from_version, move.to_version, move.actor) == (1, 2, "alice")
    assert reg.get_version_by_alias("iris", "staging").version == 2
    assert reg.get_version_by_alias("iris", "latest").version == 3
    assert reg.get_registered_model("iris").aliases == {"staging": 2}
    with pytest.raises(ls.Conflict, match=r"moving iris@staging from version 2 to 3 is refused"):
        reg.set_alias("iris", "staging", 3)
    assert reg.get_version_by_alias("iris", "staging").version == 2
    assert reg.set_alias("iris", "staging", 3, force=True).to_version == 3
    with pytest.raises(ls.Invalid, match="'latest' is reserved"):
        reg.set_alias("iris", "latest", 1)
    with pytest.raises(ls.NotFound, match="model 'iris' has no alias 'canary'"):
        reg.get_version_by_alias("iris", "canary")
    assert reg.delete_alias("iris", "staging").from_version == 3
    history = [(m.from_version, m.to_version, m.reason) for m in reg.alias_history("iris")]
    assert history == [(None, 1, ""), (1, 2, "retrained"), (2, 3, ""), (3, None, "")]
    assert len(reg.alias_history("iris", "staging")) == 4 and reg.alias_history("iris", "x") == []


def test_production_moves_only_through_an_approval_by_another_user(backend: Backend) -> None:
    reg = ls.get_registry()
    clf, X = _iris()
    _log("fraud", clf, X)
    _log("fraud", clf, X)
    with pytest.raises(ls.Forbidden, match="'production' is a protected alias of 'fraud'"):
        reg.set_alias("fraud", "production", 1)
    request = reg.request_promotion("fraud", 1, evidence={"auc": 0.91})
    assert (request.state, request.requested_by, request.evidence["auc"]) == (
        "pending",
        "alice",
        0.91,
    )
    assert request.evidence["lineage"]["run"] is True
    with pytest.raises(ls.Conflict, match="is already pending"):
        reg.request_promotion("fraud", 1)

    backend.act_as("bob")
    bob = ls.get_registry()
    with pytest.raises(ls.NotFound, match="no approval request with id 'feedbeef'"):
        bob.decide("feedbeef", approve=True)
    approved = bob.decide(request.request_id, approve=True, comment="ship it")
    assert (approved.state, approved.decided_by, approved.comment) == ("approved", "bob", "ship it")
    assert bob.get_version_by_alias("fraud", "production").version == 1
    (move,) = bob.alias_history("fraud", "production")
    assert (move.actor, move.approval_id) == ("bob", request.request_id)
    with pytest.raises(ls.Conflict, match="is already approved"):
        bob.decide(request.request_id, approve=False)

    second = bob.request_promotion("fraud", 2)  # who asks does not decide either
    with pytest.raises(ls.Forbidden, match="'bob' requested the promotion of fraud version 2"):
        bob.decide(second.request_id, approve=True)
    backend.act_as("carol")
    rejected = ls.get_registry().decide(second.request_id, approve=False, comment="not yet")
    assert (rejected.state, rejected.decided_by) == ("rejected", "carol")
    reg = ls.get_registry()
    assert reg.get_version_by_alias("fraud", "production").version == 1
    states = [(r.version, r.state) for r in reg.list_requests(name="fraud")]
    assert states == [(1, "approved"), (2, "rejected")]
    assert [r.version for r in reg.list_requests(state="rejected")] == [2]


def test_lineage_both_ways_from_any_node(backend: Backend) -> None:
    clf, X = _iris()
    run, version = _log("lin", clf, X)
    up = ls.lineage(version)
    assert up.root == "model_version:lin/1" and up.upstream[0] == f"run:{run.run_id}"
    dataset = up.upstream[1]
    assert dataset.startswith("dataset:") and up.labels[dataset].startswith("iris@")
    down = ls.lineage(f"run:{run.run_id}")
    assert down.downstream == ["model_version:lin/1"] and down.upstream == [dataset]
    assert ls.lineage(dataset).downstream == [f"run:{run.run_id}", "model_version:lin/1"]
    assert ls.get_registry().lineage(run).downstream == ["model_version:lin/1"]
    with pytest.raises(ls.NotFound, match="no run with id 'abc'"):
        ls.lineage("run:abc")
    with pytest.raises(ls.NotFound, match="no registered model named 'ghost'"):
        ls.lineage("model_version:ghost/1")
    with pytest.raises(ls.Invalid, match="expected a lineage node like"):
        ls.lineage("planet:mars")


def test_load_model_predicts_the_same_and_refuses_a_tampered_file(backend: Backend) -> None:
    clf, X = _iris()
    run, version = _log("loader", clf, X)
    ls.get_registry().set_alias("loader", "staging", 1)
    expected = clf.predict_proba(X.tail(10))
    for uri in ("models:/loader@staging", "models:/loader/1", f"runs:/{run.run_id}/model"):
        np.testing.assert_allclose(ls.load_model(uri).predict_proba(X.tail(10)), expected)
    with pytest.raises(ls.NotFound, match="model 'loader' has no alias 'production'"):
        ls.load_model("models:/loader@production")

    other, _ = _iris()
    other.set_params(logisticregression__C=0.01).fit(X, np.arange(len(X)) % 3)
    _, tampered = _log("tampered", other, X)
    model_file = "model.pkl"
    blobs = open_stores().artifacts.blobs  # the store the server writes to, on this machine
    blobs._path(tampered.files[model_file]).write_bytes(b"not the registered model")  # type: ignore[attr-defined]
    with pytest.raises(ls.ArtifactCorrupted, match="expected sha256"):
        ls.load_model("models:/tampered/1")


def test_the_audit_log_records_the_registry_and_verifies(backend: Backend) -> None:
    clf, X = _iris()
    _log("audited", clf, X)
    ls.get_registry().set_alias("audited", "staging", 1)
    backend.act_as("bob")  # reading events is an ml-engineer's
    log = open_audit_log()
    actions = [(e["action"], e["object_id"], e["actor"]) for e in log.events(object_type="model")]
    assert ("model_version.create", "audited/1", "alice") in actions
    assert ("model.set_alias", "audited/1", "alice") in actions
    assert len(log.events(limit=1)) == 1
    result = log.verify()
    assert result.ok and result.checked > len(actions) and result.broken_seq is None


def test_rbac_a_viewer_reads_and_is_refused_every_write(backend: Backend) -> None:
    if not backend.remote:
        pytest.skip("RBAC is the server's: a local store trusts its caller")
    clf, X = _iris()
    run, _ = _log("guarded", clf, X)
    request = ls.get_registry().request_promotion("guarded", 1)
    backend.act_as("vic")
    reg = ls.get_registry()
    assert reg.get_registered_model("guarded").latest_version == 1
    assert reg.get_model_version("guarded", 1).run_id == run.run_id
    assert [v.version for v in reg.search_model_versions(name="guarded")] == [1]
    assert [r.request_id for r in reg.list_requests()] == [request.request_id]
    assert reg.lineage(f"run:{run.run_id}").downstream == ["model_version:guarded/1"]
    assert reg.alias_history("guarded") == []
    writes = [
        lambda: reg.create_registered_model("nope"),
        lambda: reg.create_model_version("guarded", source="x", files={}),
        lambda: reg.update_registered_model("guarded", description="x"),
        lambda: reg.delete_registered_model("guarded"),
        lambda: reg.set_registered_model_tag("guarded", "k", "v"),
        lambda: reg.set_model_version_tag("guarded", 1, "k", "v"),
        lambda: reg.update_model_version("guarded", 1, description="x"),
        lambda: reg.set_alias("guarded", "staging", 1),
        lambda: reg.delete_alias("guarded", "staging"),
        lambda: reg.request_promotion("guarded", 1, alias="staging"),
        lambda: reg.decide(request.request_id, approve=True),
        lambda: reg.decide(request.request_id, approve=False),
    ]
    for write in writes:
        with pytest.raises(ls.Forbidden, match="or higher in this project; 'vic' is 'viewer'"):
            write()
    backend.act_as("alice")  # a data scientist may not decide either
    with pytest.raises(ls.Forbidden, match="needs the role 'ml-engineer'"):
        ls.get_registry().decide(request.request_id, approve=True)
    backend.act_as("bob")
    assert ls.get_registry().decide(request.request_id, approve=True).state == "approved"
    assert ls.get_registry().get_version_by_alias("guarded", "production").version == 1


def test_an_admin_override_moves_and_removes_a_protected_alias(backend: Backend) -> None:
    clf, X = _iris()
    _log("override", clf, X)
    if backend.remote:  # the override is an admin's; the server checks the role
        with pytest.raises(ls.Forbidden, match="override=true moves a protected alias"):
            ls.get_registry().set_alias("override", "production", 1, override=True)
    backend.act_as("root")
    reg = ls.get_registry()
    with pytest.raises(ls.Forbidden, match="removing it needs an admin override"):
        reg.delete_alias("override", "production")
    move = reg.set_alias("override", "production", 1, override=True)
    assert (move.to_version, move.reason, move.actor) == (1, "override", "root")
    assert reg.delete_alias("override", "production", override=True).from_version == 1
    assert reg.get_registered_model("override").aliases == {}


def test_a_verified_version_is_checked_against_its_registration_event(backend: Backend) -> None:
    import json

    from sqlalchemy import text

    model, X = _iris()
    _, version = _log("audited", model, X)
    reg = ls.get_registry()
    assert reg.get_verified_model_version("audited", version.version).files == version.files
    files = {**version.files, "model.joblib": "0" * 64}
    with open_stores().db.engine.begin() as conn:
        conn.execute(
            text("UPDATE model_versions SET files=:f WHERE version=:v"),
            {"f": json.dumps(files), "v": version.version},
        )
    assert reg.get_model_version("audited", version.version).files == files  # rows: no check
    with pytest.raises(ls.Tampered, match=r"model 'audited' v1: its files' digests .*audit event"):
        reg.get_verified_model_version("audited", version.version)
