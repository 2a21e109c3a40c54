"""Skew checks and freshness (with its Prometheus gauges) over the online store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loopstack.errors import Invalid, NotFound
from loopstack.features import Entity, FeatureStore, FeatureView, Field
from loopstack.features._freshness import export_metrics

NOW = datetime.now(UTC).replace(microsecond=0)


def _since_now() -> float:
    """Seconds since NOW: a long test session runs this module minutes after importing it."""
    return (datetime.now(UTC) - NOW).total_seconds()


DRIVER = Entity("driver", join_keys=["driver_id"])


def view(name: str = "stats", ttl: timedelta = timedelta(days=1)) -> FeatureView:
    table = pa.table(
        {
            "driver_id": [1, 2, 3, 1],
            "event_timestamp": [
                NOW - timedelta(hours=3),
                NOW - timedelta(hours=2),
                NOW - timedelta(hours=1),
                NOW - timedelta(minutes=30),
            ],
            "rate": [0.1, 0.2, None, 0.15],
            "trips": [1, 2, 3, 4],
        }
    )
    return FeatureView(
        name,
        entities=[DRIVER],
        source=table,
        ttl=ttl,
        schema=[Field("rate", "float64"), Field("trips", "int64")],
    )


@pytest.fixture
def store(ls_home: Path) -> Iterator[FeatureStore]:
    fs = FeatureStore(online_url=f"sqlite:///{ls_home / 'online.db'}")
    fs.apply([DRIVER, view()])
    yield fs


def test_no_skew_after_materialization(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=1), NOW)
    report = store.check_skew("stats", [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}])
    assert report.ok, report.to_dict()
    assert [f.compared for f in report.features] == [3, 3]


def test_skew_found_per_feature_with_examples(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=1), NOW)
    # a buggy streaming job pushes a different value for driver 2 with a newer time
    store.push("stats", {"driver_id": [2], "event_timestamp": [NOW], "rate": [0.9], "trips": [2]})
    report = store.check_skew("stats", [{"driver_id": 1}, {"driver_id": 2}])
    got = report.to_dict()
    assert not report.ok
    assert got["features"]["rate"]["mismatches"] == 1
    assert got["features"]["rate"]["rate"] == 0.5
    assert got["features"]["rate"]["examples"][0]["online"] == 0.9
    assert got["features"]["rate"]["examples"][0]["offline"] == 0.2
    assert got["features"]["trips"]["mismatches"] == 0


def test_skew_counts_entities_missing_online(store: FeatureStore) -> None:
    report = store.check_skew("stats", [{"driver_id": 1}])
    assert report.missing_online == 1 and not report.ok
    with pytest.raises(Invalid):
        store.check_skew("stats", [{"id": 1}])


def test_freshness_lag_and_null_rate(store: FeatureStore) -> None:
    [before] = store.freshness()
    assert before.rows == 0 and before.lag_seconds is None
    store.materialize(NOW - timedelta(days=1), NOW)
    [f] = store.freshness()
    assert f.rows == 3
    # driver 1's newest row is 30 min older than NOW (taken when the module was imported)
    assert 30 * 60 - 5 <= f.lag_seconds <= 30 * 60 + _since_now() + 5
    assert f.null_rate == {"rate": pytest.approx(1 / 3), "trips": 0.0}
    assert (f.ttl_seconds, f.stale) == (86_400, False)  # 30 min old, a TTL of a day


def test_a_view_older_than_its_ttl_is_stale_and_one_view_can_be_asked(
    store: FeatureStore,
) -> None:
    store.materialize(NOW - timedelta(days=1), NOW)
    store.apply([view("stats_hourly", timedelta(minutes=10))])  # the newest row: 30 min old
    store.materialize(NOW - timedelta(days=1), NOW)
    got = {f.view: f.stale for f in store.freshness()}
    assert got == {"stats": False, "stats_hourly": True}
    [one] = store.freshness("stats_hourly")
    assert one.view == "stats_hourly" and one.stale and one.ttl_seconds == 600
    with pytest.raises(NotFound, match="nowhere"):
        store.freshness("nowhere")


def test_prometheus_gauges(store: FeatureStore) -> None:
    store.materialize(NOW - timedelta(days=1), NOW)
    registry = CollectorRegistry()
    export_metrics(store, registry)
    export_metrics(store, registry)  # a second scrape updates, never re-registers
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    assert samples[("loopstack_feature_view_online_rows", (("view", "stats"),))] == 3
    assert samples[
        ("loopstack_feature_null_rate", (("feature", "rate"), ("view", "stats")))
    ] == pytest.approx(1 / 3)
    lag = samples[("loopstack_feature_view_lag_seconds", (("view", "stats"),))]
    assert 30 * 60 - 5 <= lag <= 30 * 60 + _since_now() + 5
