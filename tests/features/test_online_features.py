"""Materialize, push and online reads through FeatureStore, on SQLite, memory and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from loopstack.errors import Invalid, NotFound
from loopstack.features import (
    DataFrameSource,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def rows() -> pa.Table:
    return pa.table(
        {
            "driver_id": [1, 1, 2, 3, 1],
            "event_timestamp": [T0, T0 + 2 * H, T0 + H, T0 + 30 * H, T0 + 2 * H],
            "conv_rate": [0.1, 0.2, 0.3, 0.4, 0.25],  # the last row ties on time: it wins
            "trips": [1, 2, 3, 4, 5],
            "name": ["a", "b", "c", "d", "e"],
            "seen": [T0, T0, T0 + H, None, T0 + H],
        }
    )


DRIVER = Entity("driver", join_keys=["driver_id"])
SCHEMA = [
    Field("conv_rate", "float64"),
    Field("trips", "int64"),
    Field("name", "string"),
    Field("seen", "timestamp"),
]


def stats_view(source: Any = None, ttl: timedelta | None = timedelta(days=1)) -> FeatureView:
    return FeatureView(
        "driver_stats",
        entities=[DRIVER],
        schema=SCHEMA,
        source=rows() if source is None else source,
        ttl=ttl,
    )


def ratio(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"boost": df["conv_rate"] * df["factor"]})


@pytest.fixture(params=["sqlite", "memory", pytest.param("redis", marks=pytest.mark.redis)])
def online_url(request: pytest.FixtureRequest, ls_home: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{ls_home / 'online.db'}"
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"{request.getfixturevalue('redis_url')}?prefix=lstest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(online_url: str) -> Iterator[FeatureStore]:
    fs = FeatureStore(online_url=online_url)
    view = stats_view()
    odfv = OnDemandFeatureView(
        "boosted",
        sources=[view, RequestSource("req", [Field("factor", "float64")])],
        schema=[Field("boost", "float64")],
        udf=ratio,
    )
    fs.apply([DRIVER, view, odfv])
    yield fs
    from loopstack.features._materialize import online_store

    online = online_store(fs)
    for v in online.views():
        online.delete_view(v)
    online.close()


def test_materialize_keeps_the_newest_row_per_entity_in_the_window(store: FeatureStore) -> None:
    result = store.materialize(T0 - H, T0 + 10 * H)
    [view] = result.views
    assert (view.view, view.rows_read, view.rows_written) == ("driver_stats", 4, 2)
    got = store.get_online_features(
        [{"driver_id": 1}, {"driver_id": 3}, {"driver_id": 2}],
        ["driver_stats:conv_rate", "driver_stats:name", "driver_stats:seen"],
    ).to_dict()
    assert got["driver_id"] == [1, 3, 2]
    assert got["conv_rate"] == [0.25, None, 0.3]
    assert got["name"] == ["e", None, "c"]
    assert got["seen"] == [T0 + H, None, T0 + H]
    assert got["conv_rate__event_timestamp"] == [T0 + 2 * H, None, T0 + H]
    assert got["conv_rate__stale"] == [True, False, True]  # 2024 is more than a day ago


def test_materialize_window_excludes_start_includes_end(store: FeatureStore) -> None:
    store.materialize(T0 + H, T0 + 30 * H)  # excludes driver 2 (at T0+H), includes 3
    got = store.get_online_features({"driver_id": [1, 2, 3]}, ["driver_stats:trips"]).to_dict(
        metadata=False
    )
    assert got == {"driver_id": [1, 2, 3], "trips": [5, None, 4]}


def test_materialize_incremental_continues_from_the_last_end(store: FeatureStore) -> None:
    first = store.materialize_incremental(T0 + 10 * H)
    assert first.views[0].start == T0 + 10 * H - timedelta(days=1)
    second = store.materialize_incremental(T0 + 40 * H)
    assert second.views[0].start == T0 + 10 * H
    assert second.views[0].rows_written == 1
    assert store.materialize_incremental(T0 + 40 * H).views == []  # nothing new to do
    from sqlalchemy import select

    from loopstack.store.metadata.schema import AuditEvent, Materialization

    recs = store.db.read(lambda c: c.execute(select(Materialization)).all())
    assert [r.state for r in recs] == ["succeeded", "succeeded"]
    assert [r.rows for r in recs] == [2, 1]
    actions = store.db.read(lambda c: c.execute(select(AuditEvent.action)).scalars().all())
    assert "feature_view.materialize" in actions


class FailingSource(DataFrameSource):
    """Yields its first half, then fails: a source lost halfway through a read."""

    def read(self, columns: list[str] | None = None, start: Any = None, end: Any = None) -> Any:
        table = super().read(columns, start, end)

        def batches() -> Iterator[pa.Table]:
            yield table.slice(0, 2)
            raise OSError("the warehouse connection dropped")

        return batches()


def test_a_materialization_failing_halfway_changes_nothing(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 10 * H)
    before = store.get_online_features({"driver_id": [1, 2, 3]}, ["driver_stats:*"]).to_dict()
    newer = rows().to_pylist()
    for r in newer:
        r["event_timestamp"] += 100 * H
        r["trips"] *= 10
    store.apply([stats_view(FailingSource(pa.Table.from_pylist(newer, rows().schema)))])
    with pytest.raises(NotFound, match="view 'driver_stats'.*connection dropped"):
        store.materialize(T0 + 10 * H, T0 + 200 * H)
    after = store.get_online_features({"driver_id": [1, 2, 3]}, ["driver_stats:*"]).to_dict()
    assert after == before
    from sqlalchemy import select

    from loopstack.store.metadata.schema import Materialization

    recs = store.db.read(lambda c: c.execute(select(Materialization)).all())
    assert [r.state for r in recs] == ["succeeded", "failed"]
    assert "connection dropped" in recs[1].error


def test_push_validates_then_writes_and_late_rows_are_dropped(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 10 * H)
    now = datetime.now(UTC)
    kept = store.push(
        "driver_stats",
        pd.DataFrame(
            {
                "driver_id": [1, 9],
                "event_timestamp": [now, T0 - 10 * H],
                "conv_rate": [0.9, 0.5],
                "trips": [7, 8],
                "name": ["p", "q"],
                "seen": [now, now],
            }
        ),
    )
    assert kept == 2
    late = store.push(
        "driver_stats",
        pd.DataFrame(
            {
                "driver_id": [1],
                "event_timestamp": [T0],
                "conv_rate": [0.0],
                "trips": [0],
                "name": ["old"],
                "seen": [T0],
            }
        ),
    )
    assert late == 0
    got = store.get_online_features(
        [{"driver_id": 1}, {"driver_id": 9}], ["driver_stats:conv_rate"]
    ).to_dict()
    assert got["conv_rate"] == [0.9, 0.5]
    assert got["conv_rate__stale"] == [False, True]


@pytest.mark.parametrize(
    ("drop", "field"),
    [("driver_id", "driver_id"), ("event_timestamp", "event_timestamp"), ("trips", "trips")],
)
def test_push_missing_column_is_invalid_and_writes_nothing(
    store: FeatureStore, drop: str, field: str
) -> None:
    df = rows().drop_columns([drop])
    with pytest.raises(Invalid) as err:
        store.push("driver_stats", df)
    assert err.value.field == field and repr(field) in err.value.message
    got = store.get_online_features([{"driver_id": 1}], ["driver_stats:trips"]).to_dict()
    assert got["trips"] == [None]


def test_push_wrong_dtype_names_the_column(store: FeatureStore) -> None:
    with pytest.raises(Invalid) as err:
        store.push("driver_stats", rows().set_column(3, "trips", pa.array(["x"] * 5)))
    assert err.value.field == "trips" and "int64" in err.value.message
    with pytest.raises(Invalid) as err:
        store.push("driver_stats", {**rows().to_pydict(), "event_timestamp": ["x"] * 5})
    assert err.value.field == "event_timestamp"


def test_on_demand_view_runs_the_training_udf(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 10 * H)
    got = store.get_online_features(
        [{"driver_id": 1, "factor": 2.0}, {"driver_id": 7, "factor": 3.0}],
        ["boosted:boost", "driver_stats:trips"],
    ).to_dict()
    assert got["boost"] == [0.5, None]
    assert got["trips"] == [5, None]
    assert "conv_rate" not in got  # an on-demand input, not asked for
    assert got["boost__event_timestamp"] == [T0 + 2 * H, None]
    with pytest.raises(Invalid) as err:
        store.get_online_features([{"driver_id": 1}], ["boosted:boost"])
    assert err.value.field == "factor"


def test_bad_reads_name_what_is_wrong(store: FeatureStore) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.get_online_features([{"driver_id": 1}], ["nope:x"])
    with pytest.raises(NotFound, match="'bogus'"):
        store.get_online_features([{"driver_id": 1}], ["driver_stats:bogus"])
    with pytest.raises(Invalid) as err:
        store.get_online_features([{"driver_id": 1}, {"id": 2}], ["driver_stats:trips"])
    assert err.value.field == "driver_id" and "entity row 1" in err.value.message
    with pytest.raises(Invalid):
        store.get_online_features([{"driver_id": 1}], ["driver_stats.trips"])


def test_full_feature_names_and_dataframe_input(store: FeatureStore) -> None:
    store.materialize(T0 - H, T0 + 40 * H)
    df = store.get_online_features(
        pd.DataFrame({"driver_id": [3, 2]}), ["driver_stats:*"], full_feature_names=True
    ).to_df()
    assert list(df.columns) == [
        "driver_id",
        "driver_stats__conv_rate",
        "driver_stats__trips",
        "driver_stats__name",
        "driver_stats__seen",
    ]
    assert df["driver_stats__trips"].tolist() == [4, 3]


def test_on_demand_view_cannot_be_materialized_or_pushed(store: FeatureStore) -> None:
    with pytest.raises(Invalid):
        store.materialize(T0, T0 + H, ["boosted"])
    with pytest.raises(Invalid):
        store.push("boosted", rows())
    with pytest.raises(Invalid):
        store.materialize(T0 + H, T0)


def test_materialized_rows_are_binary_and_json_rows_still_read(store: FeatureStore) -> None:
    from loopstack.features._materialize import online_store, online_view_key
    from loopstack.features.online import OnlineBatch, encode_values, is_binary_row

    store.materialize(T0 - H, T0 + 10 * H)
    online = online_store(store)
    key = online_view_key(store, "driver_stats")
    assert all(is_binary_row(v) for _, _, v in online.scan(key))
    # a row stored as JSON before the binary encoding, and one without a newer feature
    online.write(
        key,
        [
            OnlineBatch(
                ["7", "8"],
                [int(T0.timestamp() * 1e6)] * 2,
                [
                    encode_values(
                        {
                            "conv_rate": 0.7,
                            "trips": 7,
                            "name": "g",
                            "seen": int(T0.timestamp() * 1e6),
                        }
                    ),
                    encode_values({"conv_rate": 0.8}),
                ],
            )
        ],
    )
    got = store.get_online_features(
        {"driver_id": [8, 1, 7, 9]},
        ["driver_stats:seen", "driver_stats:conv_rate", "driver_stats:name"],
    ).to_dict()
    assert got["conv_rate"] == [0.8, 0.25, 0.7, None]
    assert got["seen"] == [None, T0 + H, T0, None]
    assert got["name"] == [None, "e", "g", None]
    assert got["seen__event_timestamp"] == [T0, T0 + 2 * H, T0, None]
    # every feature, one feature, and features in another order than stored
    one = store.get_online_features([{"driver_id": 1}], ["driver_stats:trips"]).to_dict()
    assert one["trips"] == [5]
    every = store.get_online_features([{"driver_id": 1}], ["driver_stats:*"]).to_dict(
        metadata=False
    )
    assert every == {
        "driver_id": [1],
        "conv_rate": [0.25],
        "trips": [5],
        "name": ["e"],
        "seen": [T0 + H],
    }
    none = store.get_online_features([], ["driver_stats:trips"]).to_dict(metadata=False)
    assert none == {"driver_id": [], "trips": []}


def test_format_1_rows_read_and_unknown_versions_are_refused(store: FeatureStore) -> None:
    import marshal

    import msgpack

    from loopstack.features._materialize import online_store, online_view_key
    from loopstack.features.online import OnlineBatch, row_layout

    online = online_store(store)
    key = online_view_key(store, "driver_stats")
    us = int(T0.timestamp() * 1e6)
    layout = row_layout(["conv_rate", "trips", "name", "seen"])
    old = marshal.dumps((1, layout, 0.5, 3, "old", us), 4)  # as loopstack wrote before
    online.write(key, [OnlineBatch(["7"], [us], [old])])
    got = store.get_online_features(
        {"driver_id": [7]}, ["driver_stats:name", "driver_stats:conv_rate", "driver_stats:seen"]
    ).to_dict(metadata=False)
    assert got == {"driver_id": [7], "name": ["old"], "conv_rate": [0.5], "seen": [T0]}
    online.write(key, [OnlineBatch(["8"], [us], [msgpack.packb([7, layout, 1.0])])])
    with pytest.raises(Invalid, match="format version 7"):
        store.get_online_features({"driver_id": [7, 8]}, ["driver_stats:name"])


def test_bytes_features_round_trip_through_binary_rows(online_url: str) -> None:
    fs = FeatureStore(online_url=online_url)
    data = pa.table(
        {
            "driver_id": [1, 2],
            "event_timestamp": [T0, T0],
            "blob": pa.array([b"\x00\xffab", None], pa.binary()),
            "small": pa.array([0.5, 1.5], pa.float32()),
        }
    )
    view = FeatureView(
        "blobs",
        entities=[DRIVER],
        source=data,
        schema=[Field("blob", "bytes"), Field("small", "float32")],
    )
    fs.apply([DRIVER, view])
    fs.materialize(T0 - H, T0 + H)
    got = fs.get_online_features({"driver_id": [1, 2]}, ["blobs:blob", "blobs:small"]).to_dict(
        metadata=False
    )
    assert got == {"driver_id": [1, 2], "blob": [b"\x00\xffab", None], "small": [0.5, 1.5]}
    from loopstack.features._materialize import online_store

    online_store(fs).delete_view("blobs")


def test_values_a_binary_row_cannot_hold_fall_back_to_json_rows() -> None:
    import datetime as dt
    import decimal

    from loopstack.features._materialize import encode_batches
    from loopstack.features.online import decode_values, is_binary_row

    view = FeatureView(
        "odd",
        entities=[DRIVER],
        source=rows(),
        schema=[Field("day", "string"), Field("amount", "float64")],
    )
    table = pa.table(
        {
            "driver_id": [2, 1],
            "event_timestamp": [T0, T0],
            "day": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
            "amount": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(5, 2)),
        }
    )
    [batch] = list(encode_batches(view, table, None, [0]))
    assert not any(is_binary_row(v) for v in batch.values)
    got = dict(zip(batch.keys, map(decode_values, batch.values), strict=True))
    assert got["2"]["day"] == "2024-01-02" and got["1"] == {"day": None, "amount": None}


def test_features_that_are_not_a_list_of_references_are_refused_by_name(
    store: FeatureStore,
) -> None:
    for bad in ([[-30152, 5.5e-205]], "driver_stats:trips", 7):
        with pytest.raises(Invalid, match=r"features must be a list of 'view:feature' references"):
            store.get_online_features([{"driver_id": 1}], bad)  # type: ignore[arg-type]
