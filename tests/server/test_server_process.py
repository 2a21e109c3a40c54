"""`loopstack server` as a real process, with several workers."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from loopstack.store.remote import close_shared
from loopstack.tracking import TrackingClient
from loopstack.tracking._rest_store import RestTrackingStore
from tests.conftest import start_server, stop_server


@pytest.mark.slow
def test_two_workers_share_one_store(ls_home: Path) -> None:
    proc, url = start_server({**os.environ, "LOOPSTACK_HOME": str(ls_home)}, workers=2)
    try:
        store = RestTrackingStore.shared(url)
        client = TrackingClient(store=store)
        eid = client.set_experiment("multi")
        ids = [client.create_run(eid).run_id for _ in range(20)]
        for run_id in ids:
            client.log_metric(run_id, "m", 1.0)
        runs = client.search_runs([eid])
        assert sorted(r.run_id for r in runs) == sorted(ids)
        assert all(r.metrics == {"m": 1.0} for r in runs)
        assert httpx.get(f"{url}/api/v1/audit/verify").json()["ok"] is True
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{url}/metrics").text
        served = sum(
            s.value
            for f in text_string_to_metric_families(text)
            if f.name == "loopstack_http_requests"
            for s in f.samples
            if s.name.endswith("_total") and s.labels["route"].startswith("/api/v1")
        )
        assert served == 44  # 2 + 20 + 20 + 1 + 1: every request, whichever worker answered
        close_shared(url)
    finally:
        stop_server(proc)
