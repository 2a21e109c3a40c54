"""Definitions checked against their source at apply (as Feast's ``apply`` infers and
checks the schema), duplicates in one apply, ``delete``, per-view materialization, and
removing features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app
from loopstack.errors import Conflict, Invalid, LoopstackError, NotFound
from loopstack.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
)
from loopstack.store import audit
from tests.conftest import DomainBackend

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
SCHEMA = [Field("trips", "int64"), Field("rating", "float64")]


def _parquet(path: Path, **columns: list) -> str:
    data = {
        "driver_id": [1, 2],
        "event_timestamp": [T0, T0 + H],
        "trips": [3, 7],
        "rating": [4.5, 3.5],
    }
    data.update(columns)
    pd.DataFrame({k: v for k, v in data.items() if v is not None}).to_parquet(path, index=False)
    return str(path)


def _driver() -> Entity:
    return Entity("driver", join_keys=["driver_id"])


def _view(path: str, name: str = "stats", schema: list[Field] | None = None, **kw) -> FeatureView:
    return FeatureView(
        name, entities=[_driver()], schema=schema or SCHEMA, source=FileSource(path), **kw
    )


# -- checked against the source --------------------------------------------------------------
def test_a_declared_feature_missing_from_the_source_is_refused_naming_view_and_column(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    view = _view(path, schema=[*SCHEMA, Field("speed", "float64")])
    with pytest.raises(
        Conflict,
        match=r"feature view 'stats' .*s\.parquet.* has no column for the declared feature "
        r"'speed' \(float64\); found columns driver_id, event_timestamp, trips, rating",
    ):
        store.apply([_driver(), view])
    with pytest.raises(NotFound):  # nothing was registered
        store.get_feature_view("stats")
    assert store.apply([_driver(), _view(path)])[1].version == 1


def test_an_incompatible_type_is_refused_saying_expected_and_found(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    path = _parquet(tmp_path / "s.parquet", trips=["3", "7"])
    with pytest.raises(
        Conflict, match=r"feature stats:trips is declared int64 but the source .* has string"
    ):
        FeatureStore().apply([_driver(), _view(path)])


def test_a_compatible_type_is_accepted_and_read_as_declared(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    frame = pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "trips": [3], "rating": [4.5]}
    ).astype({"trips": "int32"})
    frame.to_parquet(path, index=False)
    store = FeatureStore()
    store.apply([_driver(), _view(str(path))])  # int32 serves an int64 feature
    out = store.get_historical_features(
        pd.DataFrame({"driver_id": [1], "event_timestamp": [T0 + H]}), ["stats:trips"]
    )
    assert out["trips"].tolist() == [3] and str(out["trips"].dtype) == "int64"


def test_join_keys_and_the_timestamp_field_must_exist(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    store = FeatureStore()
    no_key = _parquet(tmp_path / "a.parquet", driver_id=None, id=[1, 2])
    with pytest.raises(
        Conflict, match=r"'stats' .* has no column 'driver_id' \(declared as a join key\)"
    ):
        store.apply([_driver(), _view(no_key)])
    no_ts = _parquet(tmp_path / "b.parquet", event_timestamp=None, ts=[T0, T0])
    with pytest.raises(
        Conflict, match=r"no column 'event_timestamp' \(declared as a timestamp field\); it has"
    ):
        store.apply([_driver(), _view(no_ts)])
    text_ts = _parquet(tmp_path / "c.parquet", event_timestamp=["x", "y"])
    with pytest.raises(Conflict, match="timestamp field 'event_timestamp' of feature view 'stats'"):
        store.apply([_driver(), _view(text_ts)])
    assert store.apply([_driver(), _view(no_ts, timestamp_field="ts")])[1].version == 1


def test_an_unreadable_source_is_refused_naming_the_path_unless_not_checked(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    store = FeatureStore()
    missing = str(tmp_path / "later.parquet")
    with pytest.raises(NotFound, match=f"the feature source file '{missing}' does not exist"):
        store.apply([_driver(), _view(missing)])
    truncated = tmp_path / "cut.parquet"
    _parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(NotFound, match=r"cannot read the source of feature view 'stats' .*cut"):
        store.apply([_driver(), _view(str(truncated))])
    # applying before the data exists: check_source=False (retrieval checks it again)
    assert store.apply([_driver(), _view(missing)], check_source=False)[1].version == 1
    labels = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    with pytest.raises(NotFound, match="later.parquet"):
        store.get_historical_features(labels, ["stats:trips"])
    _parquet(Path(missing))
    assert store.get_historical_features(labels, ["stats:trips"])["trips"].tolist() == [3]


def test_an_in_memory_source_is_checked_against_the_frame(domain_backend: DomainBackend) -> None:
    frame = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "trips": [3]})
    store = FeatureStore()
    bad = FeatureView("mem", entities=[_driver()], schema=SCHEMA, source=frame)
    with pytest.raises(Conflict, match="'mem' .*in-memory DataFrame.* declared feature 'rating'"):
        store.apply([_driver(), bad])
    good = FeatureView("mem", entities=[_driver()], schema=SCHEMA[:1], source=frame)
    assert store.apply([_driver(), good])[1].version == 1


# -- duplicates in one apply -------------------------------------------------------------------
def test_identical_duplicates_are_one_definition_and_differing_ones_are_refused(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    a, b = _driver(), _driver()  # one entity, defined in each view's own file
    views = [
        FeatureView("v1", entities=[a], schema=SCHEMA[:1], source=FileSource(path)),
        FeatureView("v2", entities=[b], schema=SCHEMA[1:], source=FileSource(path)),
    ]
    applied = store.apply([a, views[0], b, views[1], views[1]])
    assert [(r.kind, r.name) for r in applied] == [
        ("entity", "driver"),
        ("feature_view", "v1"),
        ("feature_view", "v2"),
    ]
    other = Entity("driver", join_keys=["id"])
    with pytest.raises(
        Invalid,
        match=r"two different definitions of Entity 'driver': one has "
        r"join_keys=\['driver_id'\], the other join_keys=\['id'\]",
    ):
        store.apply([a, other])
    changed = FeatureView("v1", entities=[a], schema=SCHEMA, source=FileSource(path))
    with pytest.raises(Invalid, match="two different definitions of FeatureView 'v1': one has"):
        store.apply([views[0], changed])
    held = FeatureView("v3", entities=[other], schema=SCHEMA, source=FileSource(path))
    with pytest.raises(Invalid, match="feature view 'v3' holds one with join_keys=\\['id'\\]"):
        store.apply([a, held])
    assert [v.name for v in store.list_feature_views()] == ["v1", "v2"]


def test_the_cli_applies_a_file_that_imports_one_entity_under_two_names(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "s.parquet")
    defs = tmp_path / "defs.py"
    defs.write_text(
        "from loopstack import Entity, FeatureView, Field, FileSource\n"
        "driver = Entity('driver', join_keys=['driver_id'])\n"
        "same_driver = Entity('driver', join_keys=['driver_id'])\n"
        "alias = driver\n"
        f"stats = FeatureView('stats', entities=[same_driver], source=FileSource({path!r}),\n"
        "                    schema=[Field('trips', 'int64')])\n"
    )
    res = CliRunner().invoke(app, ["features", "apply", str(defs)])
    assert res.exit_code == 0, res.output
    assert "entity driver: registered" in res.output and "stats: version 1" in res.output
    Path(path).unlink()
    res = CliRunner().invoke(app, ["features", "apply", str(defs)])
    assert res.exit_code == 1 and f"error: the feature source file '{path}'" in res.output
    res = CliRunner().invoke(app, ["features", "apply", str(defs), "--no-check-source"])
    assert res.exit_code == 0 and "stats: version 1 (unchanged)" in res.output


# -- removing features ---------------------------------------------------------------------------
def _train_a_model(store: FeatureStore, refs: list[str]) -> str:
    """A model version whose run took a training set of ``refs`` as input."""
    from loopstack.registry import get_registry

    labels = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0 + H, T0 + H]})
    with ls.start_run(experiment="churn") as run:
        store.get_historical_features(labels, refs, register_as="churn_train")
    mv = get_registry().create_model_version(
        "churn", source=f"runs/{run.run_id}/model", files={"model.pkl": "0" * 64}, run_id=run.run_id
    )
    return f"churn/{mv.version}"


def test_removing_a_used_feature_breaks_and_an_unused_one_warns(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    store.apply([_driver(), _view(path)])
    model = _train_a_model(store, ["stats:trips"])
    with pytest.raises(Conflict, match=f"'stats:trips' is removed but model version {model}"):
        store.apply([_view(path, schema=SCHEMA[1:])])
    with pytest.warns(UserWarning, match=r"stats:rating is removed \(no registered model"):
        result = store.apply([_view(path, schema=SCHEMA[:1])])[0]
    assert result.version == 2 and result.warnings == [
        "feature stats:rating is removed (no registered model version uses it)"
    ]
    events = audit.events(store.db, object_type="feature_view", object_id="stats")
    assert [e["action"] for e in events] == ["feature_view.apply", "feature_view.apply"]


# -- delete ----------------------------------------------------------------------------------------
def _double(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"x": df["trips"] * 2})


def test_delete_removes_every_version_and_is_audited(
    domain_backend: DomainBackend, tmp_path: Path
) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    store.apply([_driver(), _view(path), _view(path, "other")])
    with pytest.warns(UserWarning, match="stats:rating is removed"):
        store.apply([_view(path, schema=SCHEMA[:1])])
    svc = FeatureService("svc", ["other:trips"])
    odfv = OnDemandFeatureView(
        "doubled", sources=[_view(path, "other")], schema=[Field("x", "int64")], udf=_double
    )
    store.apply([svc, odfv])
    with pytest.raises(
        Conflict,
        match="'other' is in use: on-demand feature view 'doubled' reads it; feature service "
        "'svc' names it",
    ):
        store.delete("other")
    assert store.delete("doubled").kind == "on_demand_feature_view"
    deleted = store.delete("stats")
    assert (deleted.kind, deleted.name, deleted.versions, deleted.forced) == (
        "feature_view",
        "stats",
        2,
        [],
    )
    with pytest.raises(NotFound, match="no feature view named 'stats'"):
        store.get_feature_view("stats")
    with pytest.raises(NotFound, match="no feature view or feature service named 'stats'"):
        store.delete("stats")
    assert store.delete("svc").kind == "feature_service"
    assert store.delete("other").versions == 1
    assert store.list_feature_views() == []
    assert store.apply([_view(path)])[0].version == 1  # a new view of that name starts afresh
    if not domain_backend.startswith("server"):
        events = audit.events(store.db, object_type="feature_view", object_id="stats")
        assert [e["action"] for e in events][-2:] == ["feature_view.delete", "feature_view.apply"]


def test_delete_is_refused_while_a_model_versions_training_set_uses_the_view(
    tmp_path: Path,
) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    store.apply([_driver(), _view(path)])
    model = _train_a_model(store, ["stats:rating"])
    with pytest.raises(Conflict, match=f"the training set of model version {model} read it"):
        store.delete("stats")
    assert store.feature_view_version("stats").version == 1
    store.materialize(T0 - H, T0 + 2 * H)
    online = {"driver_id": [1]}
    assert store.get_online_features(online, ["stats:trips"]).to_dict(metadata=False) == {
        "driver_id": [1],
        "trips": [3],
    }
    deleted = store.delete("stats", force=True)
    assert deleted.forced == [f"the training set of model version {model} read it"]
    events = audit.events(store.db, object_type="feature_view", object_id="stats")
    assert events[-1]["action"] == "feature_view.force_delete"
    store.apply([_view(path, schema=SCHEMA[1:])])  # re-created: its old online rows are gone
    got = store.get_online_features(online, ["stats:rating"]).to_dict(metadata=False)
    assert got == {"driver_id": [1], "rating": [None]}


def test_the_cli_deletes_and_refuses_without_force(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "s.parquet")
    store = FeatureStore()
    store.apply([_driver(), _view(path), FeatureService("svc", ["stats:trips"])])
    runner = CliRunner()
    refused = runner.invoke(app, ["features", "delete", "stats"])
    assert refused.exit_code == 1
    assert "error: feature view 'stats' is in use: feature service 'svc'" in refused.output
    forced = runner.invoke(app, ["features", "delete", "stats", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "deleted feature view stats (1 version)" in forced.output and "forced:" in forced.output
    gone = runner.invoke(app, ["features", "delete", "stats"])
    assert gone.exit_code == 1 and "no feature view or feature service named 'stats'" in gone.output


# -- materializing several views -----------------------------------------------------------------
def test_one_broken_view_names_itself_and_the_others_are_written(tmp_path: Path) -> None:
    good = _parquet(tmp_path / "good.parquet")
    bad = tmp_path / "bad.parquet"
    _parquet(bad)
    store = FeatureStore()
    store.apply([_driver(), _view(str(bad), "a_broken"), _view(good, "b_fine")])
    bad.write_bytes(bad.read_bytes()[:100])  # truncated after apply
    with pytest.raises(NotFound) as info:
        store.materialize(T0 - H, T0 + 2 * H)
    message = str(info.value)
    assert "'a_broken'" in message and str(bad) in message
    assert "the other views were written: b_fine" in message
    assert isinstance(info.value, LoopstackError)
    result = info.value.result  # type: ignore[attr-defined]
    assert [(v.view, bool(v.error)) for v in result.views] == [
        ("a_broken", True),
        ("b_fine", False),
    ]
    assert store.get_online_features({"driver_id": [2]}, ["b_fine:trips"]).to_dict(
        metadata=False
    ) == {"driver_id": [2], "trips": [7]}
    report = store.materialize(T0 - H, T0 + 2 * H, raise_on_error=False)
    assert [v.view for v in report.failed] == ["a_broken"]
    assert report.failed[0].error.startswith("NotFound: cannot read the source of feature view")
    assert report.to_dict()["views"][1]["error"] == ""
    incremental = store.materialize_incremental(T0 + 3 * H, raise_on_error=False)
    assert [(v.view, bool(v.error)) for v in incremental.views] == [
        ("a_broken", True),
        ("b_fine", False),
    ]
    with pytest.raises(NotFound, match="'a_broken'"):
        store.materialize_incremental(T0 + 4 * H)
    from sqlalchemy import select

    from loopstack.store.metadata.schema import Materialization

    states = store.db.read(
        lambda c: c.execute(
            select(Materialization.view_name, Materialization.state).order_by(Materialization.id)
        ).all()
    )
    assert [tuple(s) for s in states][:2] == [("a_broken", "failed"), ("b_fine", "succeeded")]


def test_the_cli_prints_every_view_and_exits_1_naming_the_broken_one(tmp_path: Path) -> None:
    good = _parquet(tmp_path / "good.parquet")
    bad = tmp_path / "bad.parquet"
    _parquet(bad)
    FeatureStore().apply([_driver(), _view(str(bad), "a_broken"), _view(good, "b_fine")])
    bad.write_bytes(bad.read_bytes()[:100])
    res = CliRunner().invoke(
        app,
        ["features", "materialize", "2023-12-31", "2024-01-02"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 1
    assert "a_broken" in res.stdout and "b_fine" in res.stdout and "error" in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: materialize failed for 1 view")
    assert "'a_broken'" in lines[0] and "bad.parquet" in lines[0]
