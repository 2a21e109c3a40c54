"""Applying definitions: versions, owners, no-op re-applies, breaking changes, audit."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Conflict, NotFound

T0 = pd.Timestamp("2024-03-01")


def _defs(tmp_path, schema=(("rate", "float64"), ("trips", "int64")), owner="ana"):
    path = tmp_path / "stats.parquet"
    if not path.exists():
        pd.DataFrame(
            {
                "driver_id": [1, 2],
                "event_timestamp": [T0, T0],
                "rate": [0.1, 0.2],
                "trips": [1, 2],
                "rate32": pd.Series([0.1, 0.2], dtype="float32"),
            }
        ).to_parquet(path)
    driver = ls.Entity("driver", join_keys=["driver_id"], owner=owner)
    view = ls.FeatureView(
        "stats",
        entities=[driver],
        source=ls.FileSource(path),
        schema=[ls.Field(n, t) for n, t in schema],
        ttl=timedelta(days=1),
        owner=owner,
    )
    return driver, view


def test_apply_versions_and_identical_definitions_write_nothing(use_db, tmp_path) -> None:
    store = ls.FeatureStore()
    driver, view = _defs(tmp_path)
    first = store.apply([driver, view])
    assert [(r.kind, r.version, r.changed) for r in first] == [
        ("entity", 1, True),
        ("feature_view", 1, True),
    ]
    again = store.apply([driver, view])
    assert [r.changed for r in again] == [False, False]
    _, wider = _defs(
        tmp_path, schema=(("rate", "float64"), ("trips", "int64"), ("rate32", "Float32"))
    )
    assert store.apply([wider])[0].version == 2
    assert store.feature_view_version("stats").version == 2
    assert store.get_feature_view("stats", version=1).feature_names == ["rate", "trips"]
    got = ls.FeatureStore().get_feature_view("stats")  # a fresh store reads it back from JSON
    assert got.digest == wider.digest and got.owner == "ana"
    assert [v.name for v in store.list_feature_views()] == ["stats"]
    assert store.get_entity("driver").join_keys == ["driver_id"]
    with pytest.raises(NotFound, match="registered feature views: stats"):
        store.get_feature_view("nope")
    with pytest.raises(NotFound, match="no version 9"):
        store.get_feature_view("stats", version=9)


def test_a_type_change_is_refused_unless_forced_and_force_is_audited(use_db, tmp_path) -> None:
    store = ls.FeatureStore()
    driver, view = _defs(tmp_path)
    store.apply([driver, view])
    _, changed = _defs(tmp_path, schema=(("rate", "float32"), ("trips", "int64")))
    with pytest.raises(Conflict, match="'rate' changes type from float64 to float32"):
        store.apply([changed])
    assert store.feature_view_version("stats").version == 1  # nothing was written
    result = store.apply([changed], force=True)[0]
    assert result.version == 2 and result.forced
    from loopstack.store import audit

    events = audit.events(store.db, object_type="feature_view", object_id="stats")
    assert [e["action"] for e in events] == ["feature_view.apply", "feature_view.force_apply"]


def test_removing_a_feature_is_refused_only_when_a_model_uses_it(use_db, tmp_path) -> None:
    store = ls.FeatureStore()
    driver, view = _defs(tmp_path)
    store.apply([driver, view])
    labels = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0], "y": [0, 1]})
    # an unused feature can go
    with ls.start_run(experiment="churn") as run:
        train = store.get_historical_features(labels, ["stats:rate"], register_as="churn_train")
        assert train.attrs["dataset_version"] == "churn_train/1"
        run_id = run.run_id
    _, no_trips = _defs(tmp_path, schema=(("rate", "float64"),))
    _, no_rate = _defs(tmp_path, schema=(("trips", "int64"),))
    # not yet used by a model version: removing is allowed
    assert store.registry.models_using("stats", ["rate"]) == {}
    from loopstack.registry import get_registry

    get_registry().create_model_version(
        "churn", source=f"runs/{run_id}/model", files={"model.pkl": "0" * 64}, run_id=run_id
    )
    assert store.registry.models_using("stats", ["rate", "trips"]) == {"stats:rate": ["churn/1"]}
    with pytest.warns(UserWarning, match=r"stats:trips is removed \(no registered model"):
        assert store.apply([no_trips])[0].version == 2  # trips was never used
    with pytest.raises(Conflict, match=r"'stats:rate' is removed but model version churn/1"):
        store.apply([no_rate])


def test_views_may_name_entities_registered_earlier_and_unknown_ones_are_refused(
    use_db, tmp_path
) -> None:
    store = ls.FeatureStore()
    driver, view = _defs(tmp_path)
    store.apply([driver])
    by_name = ls.FeatureView(
        "stats2", entities=["driver"], source=view.source, schema=[ls.Field("rate", "float64")]
    )
    store.apply([by_name])
    assert store.get_feature_view("stats2").join_keys == ["driver_id"]
    orphan = ls.FeatureView(
        "stats3", entities=["rider"], source=view.source, schema=[ls.Field("rate", "float64")]
    )
    with pytest.raises(NotFound, match="entity 'rider', which is not registered"):
        store.apply([orphan])
    moved = ls.Entity("driver", join_keys=["driver_uuid"])
    with pytest.raises(Conflict, match="join keys"):
        store.apply([moved])
