"""``POST /api/v1/runs/metric-histories``: a comparison's charts in one request."""

from __future__ import annotations

import math

import httpx

from loopstack.tracking import TrackingClient


def _runs() -> list[str]:
    """Two runs: ``loss`` over 5 steps (a NaN at step 3) and ``acc`` in both; ``only_b`` in
    the second alone."""
    client = TrackingClient()
    eid = client.set_experiment("histories")
    ids = []
    for n in range(2):
        run = client.create_run(eid, run_name=f"r{n}")
        for step in range(5):
            loss = math.nan if step == 3 else 1.0 / (step + 1) + n
            client.log_metric(run.run_id, "loss", loss, step=step)
        client.log_metric(run.run_id, "acc", 0.5 + n / 10)
        ids.append(run.run_id)
    client.log_metric(ids[1], "only_b", 7.0, step=2)
    return ids


def test_every_key_of_the_runs_comes_by_key_then_run_in_step_order(http: httpx.Client) -> None:
    a, b = _runs()
    got = http.post("/api/v1/runs/metric-histories", json={"run_ids": [a, b]})
    assert got.status_code == 200, got.text
    histories = got.json()["histories"]
    assert sorted(histories) == ["acc", "loss", "only_b"]
    assert histories["loss"][a] == [[0, 1.0], [1, 0.5], [2, 1 / 3], [3, "NaN"], [4, 0.2]]
    assert [p[0] for p in histories["loss"][b]] == [0, 1, 2, 3, 4]
    assert histories["only_b"] == {a: [], b: [[2, 7.0]]}
    # one store call agrees with the one-key verb, point for point
    one = TrackingClient().store.get_metric_histories([a, b], "loss")
    assert [m.step for m in one[b]] == [p[0] for p in histories["loss"][b]]


def test_keys_and_max_points_choose_what_comes(http: httpx.Client) -> None:
    a, b = _runs()
    body = {"run_ids": [a, b], "keys": ["loss"], "max_points": 2}
    histories = http.post("/api/v1/runs/metric-histories", json=body).json()["histories"]
    assert list(histories) == ["loss"]
    assert [p[0] for p in histories["loss"][a]] == [0, 4]  # first and last step kept


def test_bad_requests_say_what_was_expected_and_change_nothing(http: httpx.Client) -> None:
    a, _ = _runs()
    cases = [
        ({"run_ids": []}, "expected 1 to 100 run_ids; got 0"),
        ({"run_ids": ["x"] * 101}, "expected 1 to 100 run_ids; got 101"),
        ({"run_ids": [a], "keys": []}, "expected 1 to 100 keys; got 0"),
        ({"run_ids": [a], "max_points": 0}, "max_points must be 1 to 2500; got 0"),
    ]
    for body, message in cases:
        r = http.post("/api/v1/runs/metric-histories", json=body)
        assert r.status_code == 422 and r.json()["message"] == message, r.text
    missing = http.post("/api/v1/runs/metric-histories", json={"run_ids": [a, "f" * 32]})
    assert missing.status_code == 404
    assert missing.json()["message"] == f"no run with id {'f' * 32!r}"
