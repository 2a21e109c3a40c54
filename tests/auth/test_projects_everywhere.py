"""The Python API acts in the chosen project: runs, models, datasets, features, lineage.

Objects made in project ``a`` do not exist for project ``b`` nor for ``default``;
``ls.set_project`` wins over LOOPSTACK_PROJECT; a project that does not exist, or that
the caller cannot see, is refused alike, naming the projects the caller can use.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import loopstack as ls
from loopstack.auth import add_member, create_project, create_user
from loopstack.errors import NotFound
from loopstack.store import audit, open_stores

pytestmark = pytest.mark.usefixtures("use_db")
sklearn = pytest.importorskip("sklearn", reason="install loopstack[sklearn] to run this test")


def _model() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    X = iris.frame.drop(columns="target")
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    return LogisticRegression(max_iter=300).fit(X, iris.target), X


def feature_defs(tmp_path: Path, name: str = "stats") -> list[Any]:
    """An entity and a feature view over a one-file source, to apply in a project."""
    path = tmp_path / "stats.parquet"
    pd.DataFrame(
        {"driver_id": [1, 2], "event_timestamp": pd.Timestamp("2024-03-01"), "rate": [0.1, 0.2]}
    ).to_parquet(path)
    driver = ls.Entity("driver", join_keys=["driver_id"])
    view = ls.FeatureView(
        name,
        entities=[driver],
        source=ls.FileSource(path),
        schema=[ls.Field("rate", "float64")],
        ttl=timedelta(days=1),
    )
    return [driver, view]


def _fill(tmp_path: Path) -> dict[str, Any]:
    """A run with a registered model, a dataset version and a feature view, in the
    project chosen now."""
    clf, X = _model()
    with ls.start_run(experiment="iris", capture_env=False) as run:
        version = run.log_model(clf, name="iris-clf", sample_input=X.head(5))
    assert version is not None
    dataset = ls.register_dataset("orders", pd.DataFrame({"amount": [1.0, 2.5, 4.0]}))
    ls.FeatureStore().apply(feature_defs(tmp_path))
    return {"run_id": run.run_id, "dataset": dataset}


def _visible(run_id: str) -> dict[str, Any]:
    """What the chosen project shows of each kind of object, by the user-facing verbs."""
    client = ls.TrackingClient()
    try:
        run: str | None = client.get_run(run_id).run_id
    except NotFound:
        run = None
    experiment = client.get_experiment_by_name("iris")
    return {
        "run": run,
        "experiment": experiment.name if experiment else None,
        "models": [m.name for m in ls.get_registry().search_registered_models()],
        "datasets": [(d.name, d.version) for d in ls.list_datasets()],
        "feature_views": [v.name for v in ls.FeatureStore().list_feature_views()],
    }


NOTHING = {"run": None, "experiment": None, "models": [], "datasets": [], "feature_views": []}


def test_what_is_made_in_a_project_is_invisible_in_the_others(tmp_path: Path) -> None:
    db = open_stores().db
    a = create_project(db, "a", actor="root").project_id
    create_project(db, "b", actor="root")
    ls.set_project("a")
    made = _fill(tmp_path)
    run_id = made["run_id"]
    assert _visible(run_id) == {
        "run": run_id,
        "experiment": "iris",
        "models": ["iris-clf"],
        "datasets": [("orders", 1)],
        "feature_views": ["stats"],
    }
    assert ls.load_model("models:/iris-clf/1").flavor == "sklearn"
    assert ls.lineage("model_version:iris-clf/1").upstream[0] == f"run:{run_id}"

    for other in ("b", None):  # None: back to the default project
        ls.set_project(other)
        assert _visible(run_id) == NOTHING, other
        with pytest.raises(NotFound):
            ls.get_registry().get_model_version("iris-clf", 1)
        with pytest.raises(NotFound):
            ls.load_model("models:/iris-clf/1")
        with pytest.raises(NotFound):
            ls.lineage("model_version:iris-clf/1")
        with pytest.raises(NotFound):
            ls.get_dataset("orders")
        with pytest.raises(NotFound):
            ls.FeatureStore().get_feature_view("stats")

    # the same names are free in another project, and numbered from 1 there
    ls.set_project("b")
    again = _fill(tmp_path)
    assert again["dataset"].version == 1 and again["run_id"] != run_id
    assert ls.get_registry().get_model_version("iris-clf", 1).run_id == again["run_id"]
    ls.set_project("a")
    assert ls.get_registry().get_model_version("iris-clf", 1).run_id == run_id

    # every change made in a is audited as made in a
    in_a = audit.events(db, project_id=a)
    actions = {e["action"] for e in in_a}
    made_in_a = {"experiment.create", "run.create", "artifact.put", "dataset.register"}
    assert made_in_a | {"feature_view.apply"} <= actions
    assert any(e["object_type"] == "model" for e in in_a)
    assert all(e["project_id"] == a for e in in_a)
    assert audit.verify(db).ok


def test_set_project_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_stores().db
    for name in ("a", "b"):
        create_project(db, name, actor="root")
    monkeypatch.setenv("LOOPSTACK_PROJECT", "b")
    ls.register_dataset("in-b", pd.DataFrame({"x": [1]}))
    ls.set_project("a")
    ls.register_dataset("in-a", pd.DataFrame({"x": [2]}))
    assert [d.name for d in ls.list_datasets()] == ["in-a"]
    ls.set_project(None)  # back to LOOPSTACK_PROJECT
    assert [d.name for d in ls.list_datasets()] == ["in-b"]
    monkeypatch.delenv("LOOPSTACK_PROJECT")
    assert ls.list_datasets() == []  # the default project


def test_an_unknown_project_is_refused_naming_the_projects_there_are() -> None:
    db = open_stores().db
    for name in ("a", "b"):
        create_project(db, name, actor="root")
    ls.set_project("nope")
    expected = "no project named 'nope' that you can use; your projects: 'a', 'b', 'default'"
    verbs = (
        lambda: ls.start_run(experiment="x", capture_env=False),
        ls.get_registry,
        lambda: ls.register_dataset("d", pd.DataFrame({"x": [1]})),
        ls.list_datasets,
        ls.FeatureStore,
        lambda: ls.lineage("run:" + "0" * 32),
    )
    before = len(audit.events(db))
    for verb in verbs:
        with pytest.raises(NotFound) as err:
            verb()
        assert err.value.message == expected
    assert len(audit.events(db)) == before  # nothing was written anywhere


def test_with_auth_on_a_project_the_user_is_not_in_is_refused_like_a_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = open_stores().db
    create_user(db, "root", is_admin=True, actor="root")
    create_user(db, "alice", actor="root")
    for name in ("a", "b"):
        create_project(db, name, actor="root")
    add_member(db, "a", "alice", "data-scientist", actor="root")
    monkeypatch.setenv("LOOPSTACK_AUTH", "on")
    monkeypatch.setenv("LOOPSTACK_USER", "alice")
    answers = []
    for name in ("b", "c"):  # b exists but is not alice's; c does not exist
        ls.set_project(name)
        with pytest.raises(NotFound) as err:
            ls.list_datasets()
        answers.append(err.value.message.replace(repr(name), "<name>"))
    assert answers == ["no project named <name> that you can use; your projects: 'a'"] * 2
    ls.set_project("a")
    assert ls.list_datasets() == []
