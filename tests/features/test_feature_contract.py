"""One contract for feature definitions, feature services and online reads: the same
calls give the same results and errors against SQLite, PostgreSQL, and a live server over
each (the client then holds only LOOPSTACK_TRACKING_URI)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

import loopstack as ls
from loopstack.errors import Conflict, Forbidden, Invalid, NotFound
from loopstack.features import (
    DataFrameSource,
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    RequestSource,
)
from tests.conftest import DomainBackend

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
DRIVER = Entity("driver", join_keys=["driver_id"])
SCHEMA = [Field("trips", "int64"), Field("rating", "float64"), Field("seen", "timestamp")]


@pytest.fixture
def parquet(tmp_path: Path) -> str:
    path = tmp_path / "stats.parquet"
    pd.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "event_timestamp": [T0, T0 + 2 * H, T0 + H],
            "trips": [3, 5, 7],
            "rating": [4.5, 4.0, 3.5],
            "seen": [T0, T0 + H, T0],
        }
    ).to_parquet(path, index=False)
    return str(path)


def stats(path: str, schema: list[Field] | None = None) -> FeatureView:
    return FeatureView(
        "driver_stats", entities=["driver"], schema=schema or SCHEMA, source=FileSource(path)
    )


@contextmanager
def on_the_db_host(backend: DomainBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Where materialize runs: straight on the server's database (the same online store)."""
    with monkeypatch.context() as m:
        m.delenv("LOOPSTACK_TRACKING_URI", raising=False)
        m.setenv("LOOPSTACK_DB_URL", backend.db_url)
        yield


def test_through_a_server_nothing_local_is_opened(domain_backend: DomainBackend, ls_home: Path):
    store = FeatureStore()
    store.apply([DRIVER])
    remote = domain_backend.startswith("server")
    assert (store.server is not None) is remote
    assert (store._stores is None) is remote
    if domain_backend == "server-postgresql":  # the client made no SQLite file of its own
        assert not (ls_home / "loopstack.db").exists()
    assert [e.name for e in store.list_entities()] == ["driver"]


def test_apply_versions_and_reads(domain_backend: DomainBackend, parquet: str) -> None:
    store = FeatureStore()
    applied = store.apply([DRIVER, stats(parquet)])
    assert [(a.kind, a.name, a.version, a.changed) for a in applied] == [
        ("entity", "driver", 1, True),
        ("feature_view", "driver_stats", 1, True),
    ]
    assert [a.changed for a in store.apply([DRIVER, stats(parquet)])] == [False, False]
    train = store.get_historical_features(
        pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0 + 3 * H, T0 + 3 * H]}),
        ["driver_stats:trips"],
    )
    assert train["trips"].tolist() == [5, 7]
    wider = stats(parquet, [*SCHEMA, Field("extra", "int64")])
    # the source has no 'extra' column yet: apply checks that unless check_source=False
    with pytest.raises(Conflict, match="'driver_stats' .* no column for the declared feature"):
        store.apply([wider])
    assert store.apply([wider], check_source=False)[0].version == 2
    names = ["trips", "rating", "seen"]
    assert store.get_feature_view("driver_stats").feature_names == [*names, "extra"]
    assert store.get_feature_view("driver_stats", 1).feature_names == names
    assert store.feature_view_version("driver_stats").version == 2
    assert [v.version for v in store.registry.versions("driver_stats")] == [1, 2]
    assert [v.name for v in store.list_feature_views()] == ["driver_stats"]
    assert store.get_entity("driver").join_keys == ["driver_id"]


def test_errors_are_the_same_class_and_message(domain_backend: DomainBackend, parquet: str) -> None:
    store = FeatureStore()
    store.apply([DRIVER, stats(parquet)])
    with pytest.raises(NotFound, match="no feature view named 'nope'; registered feature"):
        store.get_feature_view("nope")
    with pytest.raises(NotFound, match="feature view 'driver_stats' has no version 9"):
        store.get_feature_view("driver_stats", 9)
    with pytest.raises(Invalid, match="a feature view version must be an integer"):
        store.get_feature_view("driver_stats", "x")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no entity named 'nope'; registered entities: driver"):
        store.get_entity("nope")
    with pytest.raises(Invalid, match="apply takes Entity, FeatureView"):
        store.apply(["driver"])
    with pytest.raises(NotFound, match="uses the entity 'car', which is not registered"):
        store.apply([FeatureView("cars", ["car"], SCHEMA, FileSource(parquet))])
    with pytest.raises(Conflict, match="feature 'trips' changes type from int64 to float64"):
        store.apply([stats(parquet, [Field("trips", "float64"), *SCHEMA[1:]])])
    with pytest.raises(NotFound, match="names 'driver_stats:nope', but feature view"):
        store.apply([FeatureService("svc", ["driver_stats:nope"])])
    with pytest.raises(Conflict, match="'driver_stats' is taken by a feature view"):
        store.apply([FeatureService("driver_stats", ["driver_stats:trips"])])
    with pytest.raises(NotFound, match="no feature service named 'nope'"):
        store.get_feature_service("nope")
    assert store.feature_view_version("driver_stats").version == 1


def test_feature_services(domain_backend: DomainBackend, parquet: str) -> None:
    store = FeatureStore()
    view = stats(parquet)
    svc = FeatureService("churn_v1", features=[view[["trips", "rating"]]], owner="ana")
    applied = store.apply([DRIVER, view, svc])
    assert [(a.kind, a.name, a.version) for a in applied][-1] == ("feature_service", "churn_v1", 1)
    assert store.apply([svc])[0].changed is False
    got = store.get_feature_service("churn_v1")
    assert got.features == ["driver_stats:trips", "driver_stats:rating"] and got.owner == "ana"
    assert [s.name for s in store.list_feature_services()] == ["churn_v1"]
    assert store.registry.service("churn_v1") == svc
    assert [v.name for v in store.list_feature_views()] == ["driver_stats"]  # not a view
    labels = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0 + 3 * H] * 2})
    with ls.start_run(experiment="churn") as run:
        train = store.get_historical_features(labels, features=got)
    assert train[["trips", "rating"]].values.tolist() == [[5, 4.0], [7, 3.5]]
    assert ls.get_run(run.run_id).tags["loopstack.feature_service"] == "churn_v1"
    with pytest.raises(Invalid, match="has no feature 'nope'"):
        view[["nope"]]


def test_online_reads_are_the_same_and_remote_writes_are_refused(
    domain_backend: DomainBackend, parquet: str, monkeypatch: pytest.MonkeyPatch, ls_home: Path
) -> None:
    store = FeatureStore()
    store.apply([DRIVER, stats(parquet), FeatureService("svc", ["driver_stats:trips"])])
    remote = domain_backend.startswith("server")
    if remote:
        for call in (
            lambda: store.materialize(T0, T0 + 5 * H),
            lambda: store.materialize_incremental(T0 + 5 * H),
            lambda: store.push("driver_stats", pd.read_parquet(parquet)),
            lambda: store.check_skew("driver_stats", pd.read_parquet(parquet)),
        ):
            with pytest.raises(Invalid, match="needs the metadata store.*reaches the server"):
                call()
        assert not (ls_home / "online.db").exists()  # nothing was written anywhere
    with on_the_db_host(domain_backend, monkeypatch):
        FeatureStore().materialize(T0, T0 + 5 * H)
    # the online store's freshness, the server's through it: two drivers, the newest
    # event at T0 + 2 h, years ago (no TTL: never stale)
    [fresh] = store.freshness()
    assert (fresh.view, fresh.rows, fresh.newest_event_ts) == (
        "driver_stats",
        2,
        (T0 + 2 * H).timestamp(),
    )
    assert fresh.ttl_seconds is None and fresh.stale is None and fresh.lag_seconds > 3600
    with pytest.raises(NotFound, match="nope"):
        store.freshness("nope")
    rows = [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 9}]
    got = store.get_online_features(rows, ["driver_stats:trips", "driver_stats:seen"])
    assert got.to_dict() == {
        "driver_id": [1, 2, 9],
        "trips": [5, 7, None],
        "seen": [T0 + H, T0, None],
        "trips__event_timestamp": [T0 + 2 * H, T0 + H, None],
        "seen__event_timestamp": [T0 + 2 * H, T0 + H, None],
        "trips__stale": [False, False, False],
        "seen__stale": [False, False, False],
    }
    by_service = store.get_online_features(rows, store.get_feature_service("svc"))
    assert by_service.to_dict(metadata=False) == {"driver_id": [1, 2, 9], "trips": [5, 7, None]}
    with pytest.raises(NotFound, match="no feature view named 'nope'"):
        store.get_online_features(rows, ["nope:x"])
    with pytest.raises(Invalid, match="entity row 0 has no join key 'driver_id'"):
        store.get_online_features([{"car": 1}], ["driver_stats:trips"])
    if remote:  # the feature server answers in Feast's shape
        answer = httpx.post(
            f"{store.server}/api/v1/features/online",
            json={"feature_service": "svc", "entities": {"driver_id": [1, 9]}},
        ).json()
        assert answer["metadata"]["feature_names"] == ["driver_id", "trips"]
        assert answer["results"][1] == {
            "values": [5, None],
            "statuses": ["PRESENT", "NOT_FOUND"],
            "event_timestamps": ["2024-01-01T02:00:00Z", "1970-01-01T00:00:00Z"],
        }


def test_rows_and_udfs_compute_in_the_process_that_applied_them(
    domain_backend: DomainBackend,
) -> None:
    df = pd.DataFrame(
        {"driver_id": [1], "event_timestamp": [T0], "trips": [4], "rating": [1.0], "seen": [T0]}
    )
    view = FeatureView("mem", entities=[DRIVER], schema=SCHEMA, source=DataFrameSource(df))
    odfv = OnDemandFeatureView(
        "doubled",
        sources=[view, RequestSource("req", [Field("factor", "int64")])],
        schema=[Field("more", "int64")],
        udf=lambda d: pd.DataFrame({"more": d["trips"] * d["factor"]}),
    )
    store = FeatureStore()
    store.apply([DRIVER, view, odfv])
    labels = pd.DataFrame({"driver_id": [1], "event_timestamp": [T0 + H], "factor": [3]})
    got = store.get_historical_features(labels, ["mem:trips", "doubled:more"])
    assert got[["trips", "more"]].values.tolist() == [[4, 12]]
    other = FeatureStore()  # another process: the definition, not the rows
    assert other.get_feature_view("mem").feature_names == ["trips", "rating", "seen"]
    with pytest.raises(NotFound, match="in-memory"):
        other.get_historical_features(labels, ["mem:trips"])


def test_a_viewer_reads_and_is_refused_every_write(
    viewer_server: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, parquet: str
) -> None:
    _, root, viewer = viewer_server
    monkeypatch.setenv("LOOPSTACK_TOKEN", root)
    FeatureStore().apply([DRIVER, stats(parquet)])
    monkeypatch.setenv("LOOPSTACK_TOKEN", viewer)
    store = FeatureStore()
    assert [v.name for v in store.list_feature_views()] == ["driver_stats"]
    assert store.get_online_features([{"driver_id": 1}], ["driver_stats:trips"]).to_dict(
        metadata=False
    ) == {"driver_id": [1], "trips": [None]}
    with pytest.raises(Forbidden, match="needs the role 'data-scientist'"):
        store.apply([FeatureService("svc", ["driver_stats:trips"])])
    with pytest.raises(Forbidden, match="needs the role 'data-scientist'"):
        store.apply([stats(parquet, SCHEMA[:2])])
    assert store.feature_view_version("driver_stats").version == 1
