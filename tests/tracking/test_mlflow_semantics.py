"""Where MLflow programs rely on MLflow's semantics, loopstack's tracking API behaves the same.

Each test runs on SQLite, PostgreSQL and through a server (native REST), so a difference
in any backend or in the JSON between client and server shows up here.
"""

from __future__ import annotations

import math
import time

import pytest

import loopstack as ls
from loopstack.store import audit, open_stores
from loopstack.tracking import Metric, TrackingClient

pytestmark = pytest.mark.usefixtures("tracking_backend")


def _audit_count() -> int:
    return audit.verify(open_stores().db).checked


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_a_finished_run_still_takes_metrics_params_and_tags(status: str) -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("late"))
    client.store.update_run(run.run_id, status=status)
    client.log_metric(run.run_id, "eval_auc", 0.91, step=3)
    client.log_param(run.run_id, "evaluated_by", "nightly")
    client.set_tag(run.run_id, "reviewed", "yes")
    got = client.get_run(run.run_id)
    assert got.status == status
    assert got.metrics == {"eval_auc": 0.91} and got.params == {"evaluated_by": "nightly"}
    assert got.tags["reviewed"] == "yes"


def test_a_run_ended_by_the_fluent_api_takes_late_metrics() -> None:
    with ls.start_run(experiment="after") as run:
        ls.log_metric("loss", 0.5)
    TrackingClient().log_metric(run.run_id, "test_loss", 0.4)
    assert ls.get_run(run.run_id).metrics == {"loss": 0.5, "test_loss": 0.4}


def test_a_deleted_run_refuses_everything_saying_it_is_deleted() -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("gone"))
    client.store.delete_run(run.run_id)
    before = _audit_count()
    for log in (
        lambda: client.log_metric(run.run_id, "m", 1.0),
        lambda: client.log_param(run.run_id, "p", 1),
        lambda: client.set_tag(run.run_id, "t", "v"),
    ):
        with pytest.raises(ls.Conflict, match=f"run '{run.run_id}' is deleted") as info:
            log()
        assert info.value.status_code == 409
    assert _audit_count() == before
    client.store.restore_run(run.run_id)
    client.log_metric(run.run_id, "m", 1.0)
    assert client.get_run(run.run_id).metrics == {"m": 1.0}


def test_relogging_a_param_with_its_value_is_a_no_op_and_another_value_writes_nothing() -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("params"))
    client.log_param(run.run_id, "lr", 0.1)
    client.log_param(run.run_id, "lr", "0.1")  # the same value: nothing to do
    before = _audit_count()
    with pytest.raises(ls.Invalid) as info:
        client.log_batch(
            run.run_id,
            metrics=[Metric("m", 1.0, 0, 1)],
            params={"lr": 0.2, "other": "x"},
            tags={"t": "v"},
        )
    assert info.value.message == (
        "Changing param values is not allowed. Param with key='lr' was already logged "
        f"with value='0.1' for run ID='{run.run_id}'. Attempted logging new value '0.2'."
    )
    assert info.value.status_code == 422 and info.value.field == "params.lr"
    got = client.get_run(run.run_id)
    assert got.params == {"lr": "0.1"} and got.metrics == {} and "t" not in got.tags
    assert _audit_count() == before


def test_nan_and_infinite_metrics_are_stored_and_read_back_everywhere() -> None:
    with ls.start_run(experiment="diverging") as run:
        ls.log_metric("loss", 0.5, step=0)
        ls.log_metric("loss", math.nan, step=1)  # the loss diverged: keep the point
        ls.log_metrics({"grad_norm": math.inf, "margin": -math.inf}, step=1)
    got = ls.get_run(run.run_id)
    assert math.isnan(got.metrics["loss"])
    assert got.metrics["grad_norm"] == math.inf and got.metrics["margin"] == -math.inf
    history = TrackingClient().get_metric_history(run.run_id, "loss")
    assert [m.step for m in history] == [0, 1]
    assert history[0].value == 0.5 and math.isnan(history[1].value)
    frame = ls.search_runs("diverging")
    assert math.isnan(frame["metrics.loss"].iloc[0])
    assert frame["metrics.grad_norm"].iloc[0] == math.inf


def test_a_later_finite_point_replaces_a_nan_as_the_latest_value() -> None:
    client = TrackingClient()
    run = client.create_run(client.set_experiment("recovering"))
    client.log_batch(run.run_id, metrics=[Metric("loss", math.nan, 1, 10)])
    assert math.isnan(client.get_run(run.run_id).metrics["loss"])
    client.log_batch(run.run_id, metrics=[Metric("loss", 0.25, 2, 11)])
    assert client.get_run(run.run_id).metrics == {"loss": 0.25}


def _runs_with_losses(experiment: str) -> dict[str, str]:
    """One run per loss (None: the run logs no loss); returns loss label -> run id."""
    client = TrackingClient()
    eid = client.set_experiment(experiment)
    ids = {}
    for label, value in [
        ("0.3", 0.3),
        ("nan", math.nan),
        ("0.1", 0.1),
        ("inf", math.inf),
        ("none", None),
    ]:
        run = client.create_run(eid, run_name=label)
        if value is not None:
            client.log_metric(run.run_id, "loss", value)
        ids[label] = run.run_id
    return ids


def test_filters_treat_nan_as_mlflow_does() -> None:
    _runs_with_losses("nan-filter")

    def names(flt: str) -> set[str]:
        return set(ls.search_runs("nan-filter", filter=flt)["run_name"])

    # A NaN is in no order with any number and equal to none: only "!=" matches it.
    assert names("metrics.loss < 1") == {"0.3", "0.1"}
    assert names("metrics.loss >= 0") == {"0.3", "0.1", "inf"}
    assert names("metrics.loss = 0") == set()
    assert names("metrics.loss != 0.1") == {"0.3", "nan", "inf"}


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("ASC", ["0.1", "0.3", "inf", "nan", "none"]), ("DESC", ["inf", "0.3", "0.1", "nan", "none"])],
)
def test_ordering_by_a_metric_puts_nan_after_numbers_and_missing_last(
    direction: str, expected: list[str]
) -> None:
    _runs_with_losses("nan-order")
    frame = ls.search_runs("nan-order", order_by=[f"metrics.loss {direction}"])
    assert list(frame["run_name"]) == expected


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("metrics.loss ASC", ["0.1b", "0.1", "0.3", "inf", "nan", "none"]),
        ("metrics.loss DESC", ["inf", "0.3", "0.1b", "0.1", "nan", "none"]),
        ("params.model DESC", ["rf", "gbm", "gbm", "none", "none", "none"]),
    ],
)
def test_pages_of_an_order_by_a_key_follow_one_another_across_nan_and_missing(
    size: int, order: str, expected: list[str]
) -> None:
    """Each page picks up where the last stopped, through the runs with a value, the
    NaNs and the runs without the key; ties keep the newest first, as one full page."""
    ids = _runs_with_losses("paged")
    client = TrackingClient()
    eid = client.set_experiment("paged")
    time.sleep(0.01)  # the tie with "0.1" is broken by the start time: newest first
    tie = client.create_run(eid, run_name="0.1b")
    client.log_metric(tie.run_id, "loss", 0.1)
    for label, model in [("0.3", "gbm"), ("inf", "rf"), ("0.1", "gbm")]:
        client.log_param(ids[label], "model", model)
    gone = client.create_run(eid, run_name="deleted")
    client.log_metric(gone.run_id, "loss", 0.2)
    client.log_param(gone.run_id, "model", "svm")
    client.delete_run(gone.run_id)
    other = client.create_run(client.set_experiment("elsewhere"), run_name="elsewhere")
    client.log_metric(other.run_id, "loss", 0.2)
    client.log_param(other.run_id, "model", "svm")

    whole, token = client.store.search_runs([eid], order_by=[order])
    assert token is None
    models = {ids[k]: m for k, m in [("0.3", "gbm"), ("inf", "rf"), ("0.1", "gbm")]}
    shown = [models.get(r.run_id, "none") if "params" in order else r.info.run_name for r in whole]
    assert shown == expected
    paged: list[str] = []
    while True:
        page, token = client.store.search_runs(
            [eid], order_by=[order], max_results=size, page_token=token
        )
        paged += [r.run_id for r in page]
        if token is None:
            break
    assert paged == [r.run_id for r in whole]


def test_a_param_of_the_longest_value_that_does_not_compress_is_kept_and_found() -> None:
    """6,000 characters (MLflow's limit) of random text: more than a PostgreSQL btree
    entry holds, which the params index must not refuse."""
    import secrets

    client = TrackingClient()
    eid = client.set_experiment("long-param")
    value = secrets.token_urlsafe(4500)[:6000]
    run = client.create_run(eid, params={"prompt": value, "model": "gbm"})
    assert client.get_run(run.run_id).params["prompt"] == value
    found, _ = client.store.search_runs([eid], filter_string=f"params.prompt = '{value}'")
    assert [r.run_id for r in found] == [run.run_id]
    found, _ = client.store.search_runs([eid], order_by=["params.prompt DESC"])
    assert [r.run_id for r in found] == [run.run_id]


def test_params_longer_than_the_postgresql_index_are_filtered_and_ordered_with_the_others() -> None:
    """Values over 1,000 characters sit outside PostgreSQL's (key, value) index: a filter
    and an order by the key still see them, in their place among the short ones."""
    client = TrackingClient()
    eid = client.set_experiment("long-and-short")
    values = {"a-long": "a" * 1500, "b": "b", "bb": "bb", "c-long": "c" * 1200}
    ids = {
        n: client.create_run(eid, run_name=n, params={"prompt": v}).run_id
        for n, v in values.items()
    }
    client.create_run(eid, run_name="none", params={"model": "gbm"})

    def names(**kw: object) -> list[str]:
        found, _ = client.store.search_runs([eid], **kw)  # type: ignore[arg-type]
        return [r.info.run_name for r in found]

    assert names(order_by=["params.prompt ASC"]) == ["a-long", "b", "bb", "c-long", "none"]
    assert names(order_by=["params.prompt DESC"]) == ["c-long", "bb", "b", "a-long", "none"]
    assert set(names(filter_string="params.prompt != 'b'")) == {"a-long", "bb", "c-long"}
    assert names(filter_string="params.prompt ILIKE 'C%'") == ["c-long"]
    assert names(filter_string="params.prompt LIKE 'c%'") == ["c-long"]
    assert names(filter_string=f"params.prompt IN ('b', '{values['a-long']}')") == ["b", "a-long"]
    paged, token = [], None
    while True:
        page, token = client.store.search_runs(
            [eid], order_by=["params.prompt DESC"], max_results=1, page_token=token
        )
        paged += [r.run_id for r in page]
        if token is None:
            break
    assert paged[:4] == [ids["c-long"], ids["bb"], ids["b"], ids["a-long"]]


@pytest.mark.parametrize(
    "clause",
    ["metrics.loss SIDEWAYS", "metrics.loss ASC DESC", "metrics.loss DESCENDING", "  ", "ASC"],
)
def test_an_order_by_clause_that_does_not_parse_is_refused(clause: str) -> None:
    ls.set_experiment("order")
    with pytest.raises(ls.Invalid, match=r"<key> \[ASC\|DESC\]") as info:
        ls.search_runs("order", order_by=[clause])
    assert repr(clause) in info.value.message and info.value.field == "order_by"


def test_end_run_without_an_active_run_does_nothing() -> None:
    ls.end_run()  # as mlflow.end_run(): nothing to end
    with ls.start_run(experiment="twice") as run:
        pass
    ls.end_run()
    assert ls.get_run(run.run_id).status == "FINISHED"
    assert ls.active_run() is None
