"""Bad input to get_historical_features: a clear error before any work starts."""

from __future__ import annotations

import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Conflict, Invalid, NotFound

T0 = pd.Timestamp("2024-03-01")


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "stats.parquet"
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "rate": [0.1], "trips": [3]}
    ).to_parquet(path)
    driver = ls.Entity("driver", join_keys=["driver_id"])
    view = ls.FeatureView(
        "stats",
        entities=[driver],
        source=ls.FileSource(path),
        schema=[ls.Field("rate", "float64"), ls.Field("trips", "int64")],
    )
    s = ls.FeatureStore()
    s.apply([driver, view])
    s.path = path  # type: ignore[attr-defined]
    return s


LABELS = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})


def test_missing_timestamp_column_or_join_key_is_invalid_naming_it(store) -> None:
    with pytest.raises(Invalid, match="no timestamp column 'event_timestamp'"):
        store.get_historical_features(LABELS.drop(columns="event_timestamp"), ["stats:rate"])
    with pytest.raises(Invalid, match="no join key 'driver_id' of feature view 'stats'"):
        store.get_historical_features(LABELS.drop(columns="driver_id"), ["stats:rate"])
    renamed = LABELS.rename(columns={"event_timestamp": "ts"})
    out = store.get_historical_features(renamed, ["stats:rate"], timestamp_column="ts")
    assert out["rate"].tolist() == [0.1]


def test_unknown_view_or_feature_is_not_found_listing_what_exists(store) -> None:
    with pytest.raises(
        NotFound, match="no feature view named 'nope'; registered feature views: stats"
    ):
        store.get_historical_features(LABELS, ["nope:rate"])
    with pytest.raises(NotFound, match="no feature 'speed'; its features: rate, trips"):
        store.get_historical_features(LABELS, ["stats:speed"])
    with pytest.raises(Invalid, match="'view:feature'"):
        store.get_historical_features(LABELS, ["stats.rate"])


def test_a_missing_source_file_is_not_found_naming_the_path(store) -> None:
    store.path.unlink()
    with pytest.raises(NotFound, match=str(store.path)):
        store.get_historical_features(LABELS, ["stats:rate"])


def test_a_changed_source_schema_is_a_conflict_naming_the_field(store) -> None:
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "rate": ["high"], "trips": [3]}
    ).to_parquet(store.path)
    with pytest.raises(
        Conflict, match="stats:rate is declared float64 but the source .* has string"
    ):
        store.get_historical_features(LABELS, ["stats:rate"])
    pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "rate": [0.1]}).to_parquet(store.path)
    with pytest.raises(Conflict, match="has no column for the declared feature 'trips'"):
        store.get_historical_features(LABELS, ["stats:rate"])


def test_an_in_memory_source_cannot_be_read_by_another_process(store) -> None:
    df = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "rate": [0.1]})
    view = ls.FeatureView(
        "mem", entities=["driver"], source=df, schema=[ls.Field("rate", "float64")]
    )
    store.apply([view])
    assert store.get_historical_features(LABELS, ["mem:rate"])["rate"].tolist() == [0.1]
    other = ls.FeatureStore()  # as another process would: only the stored JSON
    with pytest.raises(NotFound, match="in-memory DataFrame .* another process cannot read"):
        other.get_historical_features(LABELS, ["mem:rate"])


def test_colliding_feature_names_ask_for_full_feature_names(store) -> None:
    df = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0], "rate": [0.5]})
    store.apply(
        [
            ls.FeatureView(
                "other", entities=["driver"], source=df, schema=[ls.Field("rate", "float64")]
            )
        ]
    )
    with pytest.raises(Invalid, match="full_feature_names=True"):
        store.get_historical_features(LABELS, ["stats:rate", "other:rate"])
    out = store.get_historical_features(
        LABELS, ["stats:rate", "other:rate"], full_feature_names=True
    )
    assert out[["stats__rate", "other__rate"]].values.tolist() == [[0.1, 0.5]]


def test_definitions_refuse_bad_types_and_round_trip() -> None:
    with pytest.raises(Invalid, match="a feature type must be one of"):
        ls.Field("x", "decimal")
    import numpy as np
    import pyarrow as pa

    assert [
        ls.Field("x", t).dtype
        for t in ("Float32", np.int64, pa.string(), "UnixTimestamp", "Bool", np.dtype("float64"))
    ] == ["float32", "int64", "string", "timestamp", "bool", "float64"]
    e = ls.Entity("driver", join_keys=["driver_id"], tags={"team": "x"})
    assert (
        ls.Entity.from_dict(e.to_dict()) == e
        and e.digest == ls.Entity.from_dict(e.to_dict()).digest
    )
