"""The API beside the datasets, feature views and audit log pages: the online store's
freshness per view (``stale`` past the TTL), and the audit log read a page at a time
back from a sequence number. Bad input is a 4xx that says what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pyarrow as pa

from loopstack.features import Entity, FeatureStore, FeatureView, Field, OnDemandFeatureView


def _double(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"doubled": df["trips"] * 2})


def _apply(now: datetime) -> FeatureStore:
    driver = Entity("driver", join_keys=["driver_id"])

    def view(name: str, age: timedelta, ttl: timedelta | None) -> FeatureView:
        source = pa.table(
            {"driver_id": [1, 2], "event_timestamp": [now - age, now - age], "trips": [1, None]}
        )
        schema = [Field("trips", "int64")]
        return FeatureView(name, entities=[driver], source=source, ttl=ttl, schema=schema)

    fresh = view("fresh", timedelta(minutes=5), timedelta(hours=1))
    stale = view("stale", timedelta(hours=2), timedelta(hours=1))
    forever = view("forever", timedelta(days=30), None)
    later = view("later", timedelta(minutes=1), timedelta(hours=1))
    odfv = OnDemandFeatureView(
        "doubled", sources=[fresh], schema=[Field("doubled", "int64")], udf=_double
    )
    store = FeatureStore()
    store.apply([driver, fresh, stale, forever, odfv])
    store.materialize(now - timedelta(days=60), now)
    store.apply([later])  # applied after the materialization: never materialized
    return store


def test_freshness_per_view_marks_the_stale_one(http: httpx.Client) -> None:
    now = datetime.now(UTC)
    _apply(now)
    got = http.get("/api/v1/features/freshness")
    assert got.status_code == 200, got.text
    views = {v["view"]: v for v in got.json()["views"]}
    assert sorted(views) == ["forever", "fresh", "later", "stale"]  # no on-demand view
    assert (views["fresh"]["stale"], views["stale"]["stale"]) == (False, True)
    assert views["fresh"]["ttl_seconds"] == 3600 and 290 < views["fresh"]["lag_seconds"] < 400
    assert views["stale"]["lag_seconds"] > 7100
    assert views["stale"]["null_rate"] == {"trips": 0.5} and views["stale"]["rows"] == 2
    assert views["forever"]["ttl_seconds"] is None and views["forever"]["stale"] is None
    never = views["later"]
    assert (never["rows"], never["lag_seconds"], never["stale"]) == (0, None, None)
    one = http.get("/api/v1/features/freshness", params={"view": "stale"}).json()["views"]
    assert [v["view"] for v in one] == ["stale"] and one[0]["stale"] is True


def test_freshness_of_a_view_not_there_or_on_demand_is_a_clear_4xx(http: httpx.Client) -> None:
    _apply(datetime.now(UTC))
    missing = http.get("/api/v1/features/freshness", params={"view": "nowhere"})
    assert missing.status_code == 404
    assert "nowhere" in missing.json()["message"] and "fresh" in missing.json()["message"]
    odfv = http.get("/api/v1/features/freshness", params={"view": "doubled"})
    assert odfv.status_code == 422
    assert "on-demand feature view" in odfv.json()["message"]


def test_the_audit_log_is_read_a_page_at_a_time_back_from_a_seq(http: httpx.Client) -> None:
    for n in range(4):
        assert http.post("/api/v1/experiments", json={"name": f"e{n}"}).status_code == 200
    everything = [e["seq"] for e in http.get("/api/v1/audit/events").json()["events"]]
    assert len(everything) >= 4 and everything == sorted(everything)
    page = http.get("/api/v1/audit/events", params={"limit": 2}).json()["events"]
    assert [e["seq"] for e in page] == everything[-2:]
    back = http.get("/api/v1/audit/events", params={"limit": 2, "before": page[0]["seq"]})
    assert [e["seq"] for e in back.json()["events"]] == everything[-4:-2]
    first = http.get("/api/v1/audit/events", params={"before": everything[0]}).json()
    assert first["events"] == []


def test_a_bad_before_is_a_clear_4xx(http: httpx.Client) -> None:
    for bad in ("0", "-3", "soon", str(2**64)):
        got = http.get("/api/v1/audit/events", params={"before": bad})
        assert got.status_code in (400, 422), (bad, got.text)
        assert "before" in got.text, (bad, got.text)
