"""Many runs' history of one metric at once (what the comparison page charts)."""

from __future__ import annotations

import pytest

from loopstack.errors import NotFound
from loopstack.tracking import Metric, TrackingClient


@pytest.mark.usefixtures("use_db")
def test_histories_of_many_runs_match_each_runs_own_history() -> None:
    client = TrackingClient()
    eid = client.create_experiment("histories")
    runs = [client.create_run(eid).run_id for _ in range(3)]
    for n, rid in enumerate(runs):
        points = [Metric("loss", 1.0 / (s + n + 1), 1000 + s, s) for s in range(4 - n)]
        client.log_batch(rid, metrics=[*points, Metric("acc", 0.5, 1000, 0)])
    store = client.store
    got = store.get_metric_histories([runs[2], runs[0], runs[1], runs[0]], "loss")
    assert list(got) == [runs[2], runs[0], runs[1]]
    for rid in runs:
        assert got[rid] == store.get_metric_history(rid, "loss")
    assert [len(got[r]) for r in runs] == [4, 3, 2]
    assert store.get_metric_histories(runs[:1], "missing") == {runs[0]: []}
    with pytest.raises(NotFound, match="no run with id 'f+'"):
        store.get_metric_histories([runs[0], "f" * 32], "loss")
