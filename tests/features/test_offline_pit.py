"""Point-in-time correctness of get_historical_features on the hard cases."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopstack as ls
from tests.features.pit_reference import reference_join

T0 = pd.Timestamp("2024-03-01 12:00:00")


def _store() -> ls.FeatureStore:
    return ls.FeatureStore()


def _view(
    source: Any,
    *,
    name: str = "stats",
    keys: tuple[str, ...] = ("driver_id",),
    features: tuple[tuple[str, str], ...] = (("rate", "float64"),),
    ts: str = "event_timestamp",
    ttl: timedelta | None = None,
) -> ls.FeatureView:
    ent = ls.Entity("e_" + "_".join(keys), join_keys=list(keys))
    return ls.FeatureView(
        name,
        entities=[ent],
        schema=[ls.Field(n, t) for n, t in features],
        source=source,
        timestamp_field=ts,
        ttl=ttl,
    )


def _join(
    entity_df: pd.DataFrame, view: ls.FeatureView, refs: list[str] | None = None, **kw: Any
) -> pd.DataFrame:
    store = _store()
    store.apply([*{e.name: e for e in view.entities if isinstance(e, ls.Entity)}.values(), view])
    return store.get_historical_features(
        entity_df, refs or [f"{view.name}:{f}" for f in view.feature_names], **kw
    )


def test_equal_timestamps_are_visible_and_the_last_written_wins() -> None:
    feats = pd.DataFrame(
        {
            "driver_id": [1, 1, 1],
            "event_timestamp": [T0, T0, T0 + pd.Timedelta("1us")],
            "rate": [0.1, 0.2, 0.9],
        }
    )
    ents = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    out = _join(ents, _view(feats))
    assert out["rate"].tolist() == [0.2]  # same ts as the entity: visible; later row wins


def test_late_arriving_rows_are_visible_by_event_time(tmp_path: Path) -> None:
    early = pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0 - pd.Timedelta("1h")], "rate": [0.5]}
    )
    late = pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0 - pd.Timedelta("10min")], "rate": [0.7]}
    )
    d = tmp_path / "stats"
    d.mkdir()
    # written in this order: the "late" file holds an event that happened earlier? no:
    # the later file carries an event before the label time, written after the fact
    early.to_parquet(d / "part-0.parquet")
    late.to_parquet(d / "part-1.parquet")
    ents = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    assert _join(ents, _view(ls.FileSource(d)))["rate"].tolist() == [0.7]
    # a row written later but with an earlier event time than the latest does not win
    (d / "part-2.parquet").unlink(missing_ok=True)
    pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0 - pd.Timedelta("2h")], "rate": [0.1]}
    ).to_parquet(d / "part-2.parquet")
    assert _join(ents, _view(ls.FileSource(d)))["rate"].tolist() == [0.7]


def test_ttl_exactly_one_ttl_old_is_visible_one_microsecond_more_is_not() -> None:
    ttl = timedelta(hours=1)
    feats = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0], "rate": [1.0, 2.0]})
    ents = pd.DataFrame(
        {
            "driver_id": [1, 2],
            "event_timestamp": [
                T0 + pd.Timedelta(ttl),
                T0 + pd.Timedelta(ttl) + pd.Timedelta("1us"),
            ],
        }
    )
    out = _join(ents, _view(feats, ttl=ttl))
    assert out["rate"].iloc[0] == 1.0
    assert pd.isna(out["rate"].iloc[1])


def test_missing_entities_keep_their_row_with_nulls_and_order_and_duplicates_hold() -> None:
    feats = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0], "rate": [1.0, 2.0]})
    ents = pd.DataFrame(
        {
            "driver_id": [2, 99, 1, 2, 1, 2],
            "event_timestamp": [T0, T0, T0 - pd.Timedelta("1s"), T0, T0, T0],
            "label": [10, 11, 12, 13, 14, 15],
        },
        index=[50, 40, 30, 20, 10, 0],
    )
    out = _join(ents, _view(feats))
    assert len(out) == 6
    assert out["label"].tolist() == [10, 11, 12, 13, 14, 15]
    assert out["rate"].tolist()[:1] == [2.0]
    assert np.isnan(out["rate"].iloc[1]) and np.isnan(out["rate"].iloc[2])
    assert out["rate"].tolist()[3:] == [2.0, 1.0, 2.0]


def test_null_feature_values_are_not_filled_from_older_rows() -> None:
    feats = pd.DataFrame(
        {
            "driver_id": [1, 1],
            "event_timestamp": [T0 - pd.Timedelta("1h"), T0],
            "rate": [0.3, None],
            "trips": [3.0, 4.0],
        }
    )
    ents = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    out = _join(ents, _view(feats, features=(("rate", "float64"), ("trips", "float64"))))
    assert pd.isna(out["rate"].iloc[0])
    assert out["trips"].iloc[0] == 4.0


@pytest.mark.parametrize(
    "entity_tz,feature_tz",
    [("Europe/Berlin", None), (None, "US/Pacific"), ("Asia/Tokyo", "America/New_York")],
)
def test_time_zones_compare_as_instants(entity_tz: str | None, feature_tz: str | None) -> None:
    def zone(ts: pd.Timestamp, tz: str | None) -> pd.Timestamp:
        utc = ts.tz_localize("UTC")
        return utc.tz_convert(tz) if tz else utc.tz_localize(None)

    f_times = [zone(T0, feature_tz), zone(T0 + pd.Timedelta("2h"), feature_tz)]
    feats = pd.DataFrame({"driver_id": [1, 1], "event_timestamp": f_times, "rate": [1.0, 2.0]})
    e_times = [
        zone(T0 + pd.Timedelta("1h"), entity_tz),
        zone(T0 + pd.Timedelta("2h"), entity_tz),
        zone(T0 - pd.Timedelta("1us"), entity_tz),
    ]
    ents = pd.DataFrame({"driver_id": [1, 1, 1], "event_timestamp": e_times})
    out = _join(ents, _view(feats, ttl=timedelta(hours=2)))
    assert out["rate"].iloc[0] == 1.0 and out["rate"].iloc[1] == 2.0
    assert pd.isna(out["rate"].iloc[2])
    assert out["event_timestamp"].tolist() == e_times  # the entity columns come back unchanged


def test_several_views_with_different_timestamp_columns_and_multiple_join_keys() -> None:
    a = pd.DataFrame(
        {"driver_id": [1, 1], "ts_a": [T0 - pd.Timedelta("1h"), T0], "rate": [0.1, 0.2]}
    )
    b = pd.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "city": ["x", "y", "x"],
            "updated": [T0 - pd.Timedelta(days=1)] * 3,
            "trips": [5, 6, 7],
        }
    )
    store = _store()
    driver, city = ls.Entity("driver", join_keys=["driver_id"]), ls.Entity("city")
    va = ls.FeatureView(
        "a",
        entities=[driver],
        schema=[ls.Field("rate", "float64")],
        source=a,
        timestamp_field="ts_a",
    )
    vb = ls.FeatureView(
        "b",
        entities=[driver, "city"],
        schema=[ls.Field("trips", "Int64")],
        source=b,
        timestamp_field="updated",
        ttl=timedelta(days=1),
    )
    store.apply([driver, city, va, vb])
    ents = pd.DataFrame(
        {
            "driver_id": [1, 1, 2, 2],
            "city": ["y", "x", "x", "y"],
            "event_timestamp": [T0 - pd.Timedelta("30min"), T0, T0, T0 + pd.Timedelta(days=1)],
        }
    )
    out = store.get_historical_features(ents, ["a:rate", "b:trips"], full_feature_names=True)
    assert out["a__rate"].tolist()[:2] == [0.1, 0.2] and pd.isna(out["a__rate"].iloc[2])
    assert out["b__trips"].tolist()[:3] == [6, 5, 7] and pd.isna(out["b__trips"].iloc[3])


def test_on_demand_view_runs_its_udf_after_the_join() -> None:
    feats = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0], "rate": [0.5, 0.25]})
    view = _view(feats)
    req = ls.RequestSource("req", schema=[ls.Field("amount", "float64")])

    def scaled(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"scaled": df["rate"] * df["amount"]})

    odfv = ls.OnDemandFeatureView(
        "scaled_view", sources=[view, req], schema=[ls.Field("scaled", "float64")], udf=scaled
    )
    store = _store()
    store.apply([*view.entities, view, odfv])
    ents = pd.DataFrame({"driver_id": [2, 1], "event_timestamp": [T0, T0], "amount": [4.0, 2.0]})
    out = store.get_historical_features(ents, ["scaled_view:scaled"])
    assert out["scaled"].tolist() == [1.0, 1.0]
    assert "rate" not in out.columns  # only what was asked for
    # the same udf serves online: transform on the online row gives the same value
    online = odfv.transform(pd.DataFrame({"rate": [0.25], "amount": [4.0]}))
    assert online["scaled"].tolist() == [1.0]


def _random_case(rng: random.Random, tmp: Path | None) -> tuple[Any, ...]:
    n_keys = rng.randint(1, 4)
    two_keys = rng.random() < 0.3
    base = T0
    n_feat = rng.randint(0, 25)
    frows = []
    for _ in range(n_feat):
        row = {
            "k1": rng.randrange(n_keys),
            "k2": rng.randrange(2),
            "event_timestamp": base + pd.Timedelta(seconds=rng.randrange(0, 20)),
            "x": None if rng.random() < 0.15 else round(rng.random(), 3),
            "y": rng.randrange(100),
        }
        frows.append(row)
    feats = pd.DataFrame(frows, columns=["k1", "k2", "event_timestamp", "x", "y"])
    feats = feats.astype({"k1": "int64", "k2": "int64", "x": "float64", "y": "int64"})
    feats["event_timestamp"] = pd.to_datetime(feats["event_timestamp"])
    if rng.random() < 0.3:
        feats["event_timestamp"] = (
            feats["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("Asia/Kolkata")
        )
    n_ent = rng.randint(1, 15)
    ents = pd.DataFrame(
        {
            "k1": [rng.randrange(n_keys + 1) for _ in range(n_ent)],
            "k2": [rng.randrange(2) for _ in range(n_ent)],
            "event_timestamp": [
                base + pd.Timedelta(seconds=rng.randrange(-2, 24)) for _ in range(n_ent)
            ],
        }
    )
    if rng.random() < 0.3:
        ents["event_timestamp"] = (
            ents["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("America/Sao_Paulo")
        )
    ttl = rng.choice([None, timedelta(seconds=3), timedelta(seconds=10)])
    keys = ["k1", "k2"] if two_keys else ["k1"]
    source: Any = feats
    if tmp is not None and rng.random() < 0.5:
        path = tmp / f"case{rng.randrange(10**9)}.parquet"
        feats.to_parquet(path)
        source = ls.FileSource(path)
    return ents, feats, source, keys, ttl


def test_matches_the_reference_on_random_cases(tmp_path: Path) -> None:
    rng = random.Random(20240301)
    store = _store()
    for case in range(300):
        ents, feats, source, keys, ttl = _random_case(rng, tmp_path)
        ent = ls.Entity(f"ent{len(keys)}", join_keys=keys)
        view = ls.FeatureView(
            f"v{case}",
            entities=[ent],
            source=source,
            ttl=ttl,
            schema=[ls.Field("x", "float64"), ls.Field("y", "int64")],
        )
        store.apply([ent, view])
        out = store.get_historical_features(ents, [f"v{case}:x", f"v{case}:y"])
        expected = reference_join(ents, feats, keys, ["x", "y"], ttl=ttl)
        assert len(out) == len(ents)
        got = [
            {
                "x": None if pd.isna(r["x"]) else r["x"],
                "y": None if pd.isna(r["y"]) else int(r["y"]),
            }
            for r in out[["x", "y"]].to_dict("records")
        ]
        assert got == expected, (case, ents, feats, ttl)


def test_wide_time_ranges_and_nanoseconds_take_the_wide_key_path() -> None:
    times = pd.to_datetime(["1901-01-01", "2150-01-01", "2150-01-01"]).as_unit("ns")
    feats = pd.DataFrame(
        {"driver_id": [1, 1, 1], "event_timestamp": times, "rate": [1.0, 2.0, 3.0]}
    )
    ents = pd.DataFrame(
        {
            "driver_id": [1, 1, 1],
            "event_timestamp": pd.to_datetime(["1900-06-01", "2000-01-01", "2200-01-01"]).as_unit(
                "ns"
            ),
        }
    )
    out = _join(ents, _view(feats))
    assert pd.isna(out["rate"].iloc[0])
    assert out["rate"].tolist()[1:] == [1.0, 3.0]
