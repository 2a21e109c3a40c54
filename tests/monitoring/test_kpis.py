"""Business KPIs: written to the ``kpis`` event stream and read back by name, endpoint
and time; bad names, values and tags refused."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

import loopstack.monitoring as mon
from loopstack.errors import Invalid

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_kpis_round_trip_and_filter() -> None:
    for i in range(10):
        mon.log_kpi("revenue", 100.0 + i, ts=T0 + dt.timedelta(hours=i), endpoint="churn")
        mon.log_kpi(
            "conversion", np.float32(0.1 * i), ts=T0 + dt.timedelta(hours=i), tags={"arm": "b"}
        )
    every = mon.read_kpis()
    assert len(every) == 20
    revenue = mon.read_kpis("revenue", endpoint="churn")
    assert revenue["value"].tolist() == [100.0 + i for i in range(10)]
    assert revenue["value"].dtype == np.float64
    window = mon.read_kpis(
        "revenue", since=T0 + dt.timedelta(hours=2), until=T0 + dt.timedelta(hours=5)
    )
    assert window["value"].tolist() == [102.0, 103.0, 104.0]
    conv = mon.read_kpis("conversion")
    assert conv["tags"].iloc[3] == {"arm": "b"} and conv["endpoint"].isna().all()
    assert math.isclose(conv["value"].iloc[3], 0.3, rel_tol=1e-6)
    assert mon.read_kpis("nothing-here").empty


def test_now_by_default() -> None:
    before = dt.datetime.now(dt.UTC)
    mon.log_kpi("signups", 3)
    got = mon.read_kpis("signups")
    assert len(got) == 1 and got["ts"].iloc[0].to_pydatetime() >= before - dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        (("", 1.0), {}, "'name'"),
        (("has space", 1.0), {}, "'name'"),
        (("ok", float("nan")), {}, "finite"),
        (("ok", "12"), {}, "number"),
        (("ok", True), {}, "number"),
        (("ok", 1.0), {"tags": {"a": object()}}, "JSON-able"),
        (("ok", 1.0), {"tags": ["a"]}, "dict"),
        (("ok", 1.0), {"endpoint": "bad/endpoint"}, "'endpoint'"),
        (("ok", 1.0), {"ts": "yesterday"}, "'ts'"),
    ],
)
def test_bad_kpis_are_invalid(args: tuple, kw: dict, match: str) -> None:
    with pytest.raises(Invalid, match=match):
        mon.log_kpi(*args, **kw)
    assert mon.read_kpis().empty
