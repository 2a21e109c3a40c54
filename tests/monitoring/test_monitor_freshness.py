"""Feature freshness beside the model's numbers: an endpoint whose deployment enriches
from the online store reports how old each view's newest online event is."""

from __future__ import annotations

import time
from pathlib import Path

from loopstack.monitoring._monitor import observe
from loopstack.serving import deployments
from tests.serving.test_enrich import DEFAULTS, NOW, _world


def test_an_enriching_endpoint_reports_its_feature_views_lag(ls_home: Path) -> None:
    world = _world(f"sqlite:///{ls_home / 'online.db'}")
    store = deployments()
    store.create("drivers-api", "drivers/1")
    plain = observe("drivers-api", "1h")
    assert plain.feature_lag_s == {} and "feature_lag_max_s" not in plain.metrics()
    store.set_enrichment(
        "drivers-api", {"mode": "degraded", "defaults": DEFAULTS, "online_url": world.online_url}
    )
    obs = observe("drivers-api", "1h")
    m = obs.metrics()
    # the newest driver_stats event is an hour before NOW (the fixture's rows)
    expected = time.time() - (NOW.timestamp() - 3600)
    assert abs(obs.feature_lag_s["driver_stats"] - expected) < 120, obs.feature_lag_s
    assert m["feature_lag_max_s"] == max(obs.feature_lag_s.values())
    assert m["feature_lag_s.driver_stats"] == obs.feature_lag_s["driver_stats"]
