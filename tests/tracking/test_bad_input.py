"""Bad input gets a clear error naming what was wrong, and writes nothing."""

from __future__ import annotations

import pytest

import loopstack as ls
from loopstack.store import audit, open_stores
from loopstack.tracking import Metric, TrackingClient

pytestmark = pytest.mark.usefixtures("tracking_backend")


def _audit_count() -> int:
    return audit.verify(open_stores().db).checked


@pytest.mark.parametrize("value", ["0.5", None, True, "nan"])
def test_non_numeric_metric_is_refused_at_the_call(value: object) -> None:
    with ls.start_run(experiment="bad") as run:
        with pytest.raises(ls.Invalid, match="metric 'loss' must be a number") as info:
            ls.log_metric("loss", value)  # type: ignore[arg-type]
        assert info.value.status_code == 422 and info.value.field == "metrics.loss"
    assert ls.get_run(run.run_id).metrics == {}


@pytest.mark.parametrize("key", ["bad key!", "a\nb", "", "../up", "x" * 251])
def test_keys_outside_the_allowed_set_are_refused(key: str) -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("keys"))
    before = _audit_count()
    with pytest.raises(ls.Invalid, match="key"):
        client.log_param(run.run_id, key, "v")
    with pytest.raises(ls.Invalid, match="key"):
        client.log_metric(run.run_id, key, 1.0)
    assert _audit_count() == before


def test_a_batch_with_one_bad_point_writes_nothing() -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("atomic"))
    before = _audit_count()
    points = [Metric("ok", 1.0, 0, 1), Metric("ok", 2.0, 1, 2), Metric("bad", "x", 0, 3)]
    with pytest.raises(ls.Invalid, match="'bad'"):
        client.log_batch(run.run_id, metrics=points, params={"p": 1})
    got = client.get_run(run.run_id)
    assert got.metrics == {} and got.params == {}
    assert _audit_count() == before


def test_unknown_run_is_not_found_naming_it() -> None:
    client = TrackingClient()
    with pytest.raises(ls.NotFound, match="no run with id 'deadbeef'") as info:
        client.get_run("deadbeef")
    assert info.value.status_code == 404
    with pytest.raises(ls.NotFound, match="deadbeef"):
        client.log_metric("deadbeef", "m", 1.0)


def test_changing_a_param_is_refused() -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("params"))
    client.log_param(run.run_id, "lr", 0.1)
    client.log_param(run.run_id, "lr", 0.1)  # same value: fine
    with pytest.raises(ls.Invalid, match="key='lr' was already logged with value='0.1'"):
        client.log_param(run.run_id, "lr", 0.2)


def test_duplicate_experiment_and_bad_filter() -> None:
    client = TrackingClient()
    client.create_experiment("dup")
    with pytest.raises(ls.AlreadyExists, match="'dup' already exists"):
        client.create_experiment("dup")
    with pytest.raises(ls.Invalid, match="expected"):
        ls.search_runs("dup", filter="metrics.auc >")
    with pytest.raises(ls.Invalid, match="OR is not supported"):
        ls.search_runs("dup", filter="metrics.a > 1 or metrics.b > 2")
    with pytest.raises(ls.Invalid, match="metrics., params., tags. or attributes."):
        ls.search_runs("dup", filter="foo.bar = 'x'")


def test_logging_without_an_active_run_says_how_to_start_one() -> None:
    with pytest.raises(ls.Conflict, match="start_run"):
        ls.log_metric("m", 1.0)


def test_over_long_names_are_refused_on_every_backend() -> None:
    client = TrackingClient()
    eid = client.set_experiment("lengths")
    with pytest.raises(ls.Invalid, match="run_name must be at most 250"):
        client.create_run(eid, run_name="r" * 251)
    run = client.create_run(eid)
    from loopstack.tracking import DatasetInput

    with pytest.raises(ls.Invalid, match="dataset digest must be at most 64"):
        client.log_inputs(run.run_id, [DatasetInput("d", "x" * 65, "dataframe", "mem")])
    assert client.get_run(run.run_id).inputs == []
