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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ls.log_params([("a", 1)]), r"params must be a dict of keys to values.*list"),
        (lambda: ls.set_tags("team=churn"), r"tags must be a dict of keys to values.*str"),
        (lambda: ls.log_metrics([("loss", 1.0)]), r"metrics must be a dict of keys to values"),
    ],
)
def test_wrong_argument_types_name_the_argument(call: object, message: str) -> None:
    with ls.start_run(experiment="types") as run, pytest.raises(ls.Invalid, match=message):
        call()  # type: ignore[operator]
    got = ls.get_run(run.run_id)
    assert got.params == {} and got.metrics == {}


def test_search_arguments_of_the_wrong_type_are_refused_by_name() -> None:
    with ls.start_run(experiment="x"):
        ls.log_metric("loss", 0.5)
    with pytest.raises(ls.Invalid, match=r"filter must be a string; got 5 \(int\)"):
        ls.search_runs("x", filter=5)  # type: ignore[arg-type]
    with pytest.raises(ls.Invalid, match=r"max_results must be a whole number"):
        ls.search_runs("x", max_results="10")  # type: ignore[arg-type]
    with pytest.raises(ls.Invalid, match=r"experiment must be a name or id"):
        ls.search_runs(7)  # type: ignore[arg-type]
    with pytest.raises(ls.Invalid, match=r"order_by must be a list of clauses"):
        ls.search_runs("x", order_by=[1])  # type: ignore[list-item]


def test_a_single_order_by_string_is_one_clause() -> None:
    for loss in (0.3, 0.1, 0.2):
        with ls.start_run(experiment="order"):
            ls.log_metric("loss", loss)
    frame = ls.search_runs("order", order_by="metrics.loss ASC")  # type: ignore[arg-type]
    assert frame["metrics.loss"].tolist() == [0.1, 0.2, 0.3]


def test_start_run_params_and_tags_must_be_dicts() -> None:
    with pytest.raises(ls.Invalid, match=r"params must be a dict"):
        ls.start_run(experiment="x", params=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ls.Invalid, match=r"tags must be a dict"):
        ls.start_run(experiment="x", tags="team")  # type: ignore[arg-type]
    assert ls.active_run() is None
