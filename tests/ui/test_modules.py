"""The UI's pure functions, run in Chromium as the page runs them (ES modules imported
from the server): the routes the MLflow client's links name, the order_by clauses the
column headers send, the chart's ticks, the parallel coordinates' axes, the CSV preview's parser,
the number format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopstack.server import create_app
from tests.conftest import ThreadedServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page of the UI, opened from a server in this process."""
    with ThreadedServer(create_app()) as server:
        page = chromium.new_page()
        page.goto(f"{server.url}/")
        page.wait_for_selector("#experiments")
        yield page


def _call(page: Any, module: str, function: str, *args: Any) -> Any:
    return page.evaluate(
        """async ([module, fn, args]) => {
            const m = await import(`./ui/${module}`);
            const out = m[fn](...args);
            // a route's query as a plain object, so it crosses back to Python
            return out && out.query instanceof URLSearchParams
                ? {...out, query: Object.fromEntries(out.query)} : out;
        }""",
        [module, function, list(args)],
    )


ROUTES = [
    ("", "experiments", {}, {}),
    ("#/", "experiments", {}, {}),
    ("#/experiments", "experiments", {}, {}),
    ("#/experiments/7", "runs", {"experimentId": "7"}, {}),
    ("#/experiments/7/overview", "runs", {"experimentId": "7"}, {}),  # MLflow's tabs
    (
        "#/experiments/7/runs/ab12?workspace=team",  # mlflow's link in a workspace
        "run",
        {"experimentId": "7", "runId": "ab12"},
        {"workspace": "team"},
    ),
    (
        "#/experiments/7?filter=metrics.acc%20%3E%200.9%20and%20x%20%3D%20'%3F'&size=2",
        "runs",
        {"experimentId": "7"},
        {"filter": "metrics.acc > 0.9 and x = '?'", "size": "2"},
    ),
    ("#/compare?runs=a,b", "compare", {}, {"runs": "a,b"}),
    ("#/models", "models", {}, {}),
    ("#/models/churn%20v2", "model", {"name": "churn v2"}, {}),
    ("#/models/x/y", "missing", {"path": "/models/x/y"}, {}),
    ("#/deployments", "deployments", {}, {}),
    ("#/deployments/fraud", "deployment", {"name": "fraud"}, {}),
    ("#/deployments/fraud/monitoring", "monitoring", {"name": "fraud"}, {}),
    ("#/deployments/fraud/elsewhere", "missing", {"path": "/deployments/fraud/elsewhere"}, {}),
    ("#/experiments/%E0%A4%A", "runs", {"experimentId": "%E0%A4%A"}, {}),  # a stray %
    ("#/datasets", "datasets", {}, {}),
    ("#/datasets/churn.v2", "dataset", {"name": "churn.v2", "version": None}, {}),
    ("#/datasets/churn/3", "dataset", {"name": "churn", "version": "3"}, {}),
    ("#/datasets/churn/3/x", "missing", {"path": "/datasets/churn/3/x"}, {}),
    ("#/features", "features", {}, {}),
    ("#/features/driver%20stats", "feature", {"name": "driver stats"}, {}),
    ("#/features/a/b", "missing", {"path": "/features/a/b"}, {}),
    ("#/audit", "audit", {}, {}),
    ("#/audit?before=40", "audit", {}, {"before": "40"}),
    ("#/audit/3", "missing", {"path": "/audit/3"}, {}),
    ("#/pipelines", "pipelines", {}, {}),
    ("#/pipelines?pipeline=daily", "pipelines", {}, {"pipeline": "daily"}),
    ("#/pipelines/ab12", "pipelineRun", {"runUuid": "ab12"}, {}),
    ("#/pipelines/ab12/more", "missing", {"path": "/pipelines/ab12/more"}, {}),
]


def test_the_routes_of_the_address(page: Any) -> None:
    for hash_, page_, params, query in ROUTES:
        got = _call(page, "routes.js", "parseRoute", hash_)
        assert got == {"page": page_, "params": params, "query": query}, hash_


CLAUSES = [
    ("metrics", "acc", True, "metrics.`acc` DESC"),
    ("metrics", "val loss", False, "metrics.`val loss` ASC"),
    ("params", "a`b", True, 'params."a`b" DESC'),
    ("attribute", "start_time", True, "start_time DESC"),
]


def test_a_column_header_sends_an_order_by_clause_and_reads_it_back(page: Any) -> None:
    for kind, key, descending, clause in CLAUSES:
        assert _call(page, "runs.js", "orderClause", kind, key, descending) == clause
        back = _call(page, "runs.js", "parseClause", clause)
        assert back == {"kind": kind, "key": key, "descending": descending}, clause


def test_every_clause_the_headers_send_is_one_the_server_accepts(page: Any) -> None:
    import loopstack as ls

    ids = []
    for value in (0.2, 0.5):
        with ls.start_run(experiment="keys", params={"lr.init-1": str(value)}) as run:
            ls.log_metrics({"val loss/x:1": value, "acc": value})
        ids.append(run.run_id)
    for kind, key in (("metrics", "val loss/x:1"), ("metrics", "acc"), ("params", "lr.init-1")):
        clause = _call(page, "runs.js", "orderClause", kind, key, True)
        runs = ls.search_runs("keys", order_by=[clause])
        assert list(runs["run_id"]) == ids[::-1], clause  # highest first


def test_ticks_are_round_and_cover_the_range(page: Any) -> None:
    assert _call(page, "chart.js", "ticks", 0, 1, 5) == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert _call(page, "chart.js", "ticks", 3, 97, 4) == [20, 40, 60, 80]
    assert _call(page, "chart.js", "ticks", 0.5, 0.5, 4) == [0.5]
    assert _call(page, "chart.js", "ticks", -0.03, 0.01, 4) == [-0.03, -0.02, -0.01, 0, 0.01]


def test_the_csv_preview_reads_quoted_fields(page: Any) -> None:
    text = 'a,b\n1,"x, y"\n2,"say ""hi"""\r\n3,"two\nlines"\n4,'
    assert _call(page, "preview.js", "parseDelimited", text, ",", 10) == [
        ["a", "b"],
        ["1", "x, y"],
        ["2", 'say "hi"'],
        ["3", "two\nlines"],
        ["4", ""],
    ]
    assert _call(page, "preview.js", "parseDelimited", text, ",", 2) == [["a", "b"], ["1", "x, y"]]
    assert _call(page, "preview.js", "previewKind", "model/MLmodel") == "text"
    assert _call(page, "preview.js", "previewKind", "plots/roc.PNG") == "image"
    assert _call(page, "preview.js", "previewKind", "model.pkl") is None


def test_metric_values_are_shown_to_six_significant_digits(page: Any) -> None:
    cases = [(0.123456789, "0.123457"), (3, "3"), (1e-9, "1.00000e-9"), ("NaN", "NaN"), (None, "")]
    for value, shown in cases:
        assert _call(page, "dom.js", "number", value) == shown, value


def test_drift_rows_put_drifted_then_larger_effects_first(page: Any) -> None:
    columns = [
        {"column": "b", "drifted": False, "effect_size": 0.3},
        {"column": "skipped", "drifted": False, "effect_size": None},
        {"column": "a", "drifted": False, "effect_size": 0.3},
        {"column": "big", "drifted": False, "effect_size": 0.9},
        {"column": "shifted", "drifted": True, "effect_size": 0.5},
    ]
    got = _call(page, "monitoring.js", "byEffect", columns)
    assert [c["column"] for c in got] == ["shifted", "big", "a", "b", "skipped"]


def test_an_arm_is_sent_back_as_the_model_reference_the_api_takes(page: Any) -> None:
    assert _call(page, "deployments.js", "modelRef", {"model": "churn", "ref": "3"}) == "churn/3"
    assert _call(page, "deployments.js", "modelRef", {"model": "churn", "ref": "staging"}) == (
        "churn@staging"
    )


def test_lineage_columns_put_sources_left_and_descendants_right(page: Any) -> None:
    graph = {
        "root": "model_version:m/1",
        "edges": [
            ["run:r", "model_version:m/1", "produced"],
            ["dataset_version:d/1", "run:r", "input"],
            ["model_version:m/1", "model_version:n/1", "parent"],
        ],
    }
    assert _call(page, "lineage.js", "columns", graph) == {
        "model_version:m/1": 0,
        "run:r": -1,
        "dataset_version:d/1": -2,
        "model_version:n/1": 1,
    }


def test_a_profile_draws_bins_for_numbers_and_top_values_for_categories(page: Any) -> None:
    numeric = {"histogram": {"edges": [0, 0.5, 1], "counts": [3, 7]}}
    assert _call(page, "profile.js", "profileBars", numeric) == {
        "kind": "histogram",
        "bars": [{"label": "0 to 0.5", "count": 3}, {"label": "0.5 to 1", "count": 7}],
        "more": 0,
    }
    top = [{"value": f"v{i}", "count": 20 - i} for i in range(10)] + [{"value": True, "count": 1}]
    got = _call(page, "profile.js", "profileBars", {"top": top})
    assert got["kind"] == "top" and got["more"] == 3
    assert got["bars"][:2] == [{"label": "v0", "count": 20}, {"label": "v1", "count": 19}]
    assert _call(page, "profile.js", "profileBars", {"kind": "timestamp", "min": "x"}) is None


def test_a_version_s_validations_are_those_naming_it(page: Any) -> None:
    reports = [{"dataset": "d/1"}, {"dataset": "d/12"}, {"dataset": None}, {"dataset": "d/1"}]
    got = _call(page, "data.js", "resultsOf", reports, "d", 1)
    assert got == [{"dataset": "d/1"}, {"dataset": "d/1"}]


def test_freshness_in_words(page: Any) -> None:
    def verdict(f: Any) -> Any:
        return _call(page, "features.js", "freshnessVerdict", f)

    stale = {"lag_seconds": 7200, "ttl_seconds": 3600, "stale": True}
    assert verdict(stale) == {
        "text": "stale: 2 h 0 min old, past its TTL of 1 h 0 min",
        "state": "stale",
    }
    fresh = {"lag_seconds": 90, "ttl_seconds": 3600, "stale": False}
    assert verdict(fresh)["text"] == "fresh: 1 min 30 s old, within its TTL of 1 h 0 min"
    assert verdict({"lag_seconds": 5, "ttl_seconds": None, "stale": None}) == {
        "text": "5.0 s old (no TTL)",
        "state": "fresh",
    }
    assert verdict({"lag_seconds": None, "ttl_seconds": 60, "stale": None})["state"] == "never"
    assert verdict(None)["state"] == "none"


def test_the_audit_chain_s_status_in_words(page: Any) -> None:
    def verdict(result: Any) -> Any:
        return _call(page, "audit.js", "verdict", result)

    assert verdict({"ok": True, "checked": 12, "legacy": 0}) == {
        "state": "verified",
        "text": "Chain verified OK: 12 events checked.",
    }
    broken = {"ok": False, "checked": 12, "broken_seq": 7, "reason": "the row was edited"}
    assert verdict(broken)["text"] == "Chain BROKEN at event 7: the row was edited."
    elsewhere = {"ok": False, "checked": 3, "broken_seq": None, "reason": "outside your events."}
    assert verdict(elsewhere) == {
        "state": "broken",
        "text": "Chain BROKEN outside the events you may read: outside your events.",
    }


def test_an_audited_object_links_to_its_page(page: Any) -> None:
    cases = [
        ("dataset", "churn/3", "#/datasets/churn/3"),
        ("feature_view", "driver stats", "#/features/driver%20stats"),
        ("model", "fraud/2", "#/models/fraud"),
        ("model", "fraud", "#/models/fraud"),
        ("deployment", "churn-api", "#/deployments/churn-api"),
        ("experiment", "7", "#/experiments/7"),
        ("artifact", "datasets/0/x/data.parquet", None),
        ("token", "t1", None),
    ]
    for kind, object_id, href in cases:
        assert _call(page, "audit.js", "objectHref", kind, object_id) == href, (kind, object_id)


def test_a_pipeline_graph_puts_each_step_right_of_what_it_takes(page: Any) -> None:
    graph = {
        "nodes": [
            {"name": "load", "inputs": {}},
            {"name": "split", "inputs": {"df": "load"}},
            {"name": "train", "inputs": {"df": "split.train"}},
            {"name": "score", "inputs": {"model": "train", "df": "split.test"}},
            {"name": "alone", "inputs": {}},
            {"name": "load_more", "inputs": {"x": "load_more_src"}},
        ]
    }
    got = _call(page, "dag.js", "dagLayout", graph)
    assert got["columns"] == {
        "load": 0,
        "split": 1,
        "train": 2,
        "score": 3,
        "alone": 0,
        "load_more": 0,  # an input no step makes: no edge
    }
    assert got["edges"] == [
        ["load", "split", "df"],
        ["split", "train", "df"],
        ["train", "score", "model"],
        ["split", "score", "df"],
    ]
    # sources in the graph's order; a step alone in its column on the first row
    assert got["rows"] == {
        "load": 0,
        "alone": 1,
        "load_more": 2,
        "split": 0,
        "train": 0,
        "score": 0,
    }
    statuses = ["FINISHED", "CACHED", "REUSED", "FAILED", "RUNNING", "PENDING", "SKIPPED", None]
    assert [_call(page, "dag.js", "statusClass", s) for s in statuses] == [
        "succeeded",
        "cached",
        "cached",
        "failed",
        "running",
        "pending",
        "skipped",
        "pending",
    ]


def test_live_lines_put_minutes_before_now_on_x_and_leave_gaps_for_empty_minutes(
    page: Any,
) -> None:
    doc = {
        "buckets": [0, 60_000, 120_000],
        "series": [
            {"model_version": "3", "shadow": False, "p50_ms": [1.5, None, 2.0]},
            {"model_version": "4", "shadow": True, "p50_ms": [None, None, 9.0]},
        ],
    }
    arms = [{"model": "churn", "version": 3}]
    got = page.evaluate(
        """async ([doc, arms]) => {
            const m = await import("./ui/live.js");
            return m.liveLines(doc, "p50_ms", arms).map((s) => ({
                name: s.name, points: s.points.map(([x, y]) => [x, Number.isNaN(y) ? "gap" : y]),
            }));
        }""",
        [doc, arms],
    )
    assert got == [
        {"name": "churn/3", "points": [[-2, 1.5], [-1, "gap"], [0, 2.0]]},
        {"name": "v4 (shadow)", "points": [[-2, "gap"], [-1, "gap"], [0, 9.0]]},
    ]


def test_a_parallel_coordinates_axis_spans_numbers_or_orders_categories(page: Any) -> None:
    def scale(values: list[Any]) -> Any:
        return _call(page, "parcoords.js", "axisScale", values)

    # params come as text: numbers when every present value is one (a run without the
    # key is left out), spanning their range; metric values that are not finite too
    assert scale(["2", "12", None, "7"]) == {"kind": "linear", "lo": 2, "hi": 12}
    assert scale([0.5, "NaN", 0.25, "Infinity"]) == {"kind": "linear", "lo": 0.25, "hi": 0.5}
    # positive values over three decades or more (learning rates): a log scale
    assert scale(["0.1", "1e-05", "0.001"]) == {"kind": "log", "lo": 1e-05, "hi": 0.1}
    assert scale(["-1", "1000"])["kind"] == "linear"
    # any value that is not a number: ordered categories, "2" before "10"
    assert scale(["sgd", "adam", "sgd", None]) == {
        "kind": "categorical",
        "categories": ["adam", "sgd"],
    }
    assert scale(["10", "2", "x"]) == {"kind": "categorical", "categories": ["2", "10", "x"]}

    def at(s: dict[str, Any], value: Any) -> Any:
        return _call(page, "parcoords.js", "position", s, value)

    linear = {"kind": "linear", "lo": 2, "hi": 12}
    assert [at(linear, v) for v in ("2", "7", 12, None, "NaN")] == [0, 0.5, 1, None, None]
    log = {"kind": "log", "lo": 1e-05, "hi": 0.1}
    assert [round(at(log, v), 9) for v in ("1e-05", "0.001", "0.1")] == [0, 0.5, 1]
    categories = {"kind": "categorical", "categories": ["adam", "rmsprop", "sgd"]}
    assert [at(categories, v) for v in ("adam", "rmsprop", "sgd", "other")] == [0, 0.5, 1, None]
    # one value on the axis: in the middle
    assert at({"kind": "linear", "lo": 3, "hi": 3}, "3") == 0.5
    assert at({"kind": "categorical", "categories": ["x"]}, "x") == 0.5


def test_a_parallel_coordinates_axis_labels_round_ticks_powers_or_categories(page: Any) -> None:
    def ticks(s: dict[str, Any]) -> Any:
        return _call(page, "parcoords.js", "axisTicks", s)

    # the chart's round ticks, each at its place on the axis
    linear = ticks({"kind": "linear", "lo": 10, "hi": 20})
    assert linear == [[10, 0], [12, 0.2], [14, 0.4], [16, 0.6], [18, 0.8], [20, 1]]
    # an end that no round tick is near is labelled too
    ends = ticks({"kind": "linear", "lo": 0.001, "hi": 0.1})
    assert [t[0] for t in ends] == [0.001, 0.02, 0.04, 0.06, 0.08, 0.1]
    assert ends[0][1] == 0 and ends[-1][1] == 1
    log = ticks({"kind": "log", "lo": 1e-05, "hi": 0.1})
    assert [t[0] for t in log] == [1e-05, 1e-04, 1e-03, 1e-02, 0.1]
    many = {"kind": "categorical", "categories": [f"c{i}" for i in range(30)]}
    labelled = [t[0] for t in ticks(many)]
    assert labelled == [f"c{i}" for i in range(0, 30, 3)]  # every 3rd of 30: at most 14


def test_parallel_coordinates_start_from_the_params_that_differ_and_every_metric(
    page: Any,
) -> None:
    runs = [
        {"params": {"opt": "adam", "seed": "1", "lr": "0.1"}, "metrics": {"loss": 0.3, "acc": 0.9}},
        {"params": {"opt": "sgd", "seed": "1"}, "metrics": {"acc": 0.8}},
    ]
    assert _call(page, "parcoords.js", "defaultAxes", runs) == [
        {"kind": "params", "key": "lr"},  # set in one run only: it differs
        {"kind": "params", "key": "opt"},
        {"kind": "metrics", "key": "acc"},
        {"kind": "metrics", "key": "loss"},
    ]
    ramp = [_call(page, "parcoords.js", "rampColor", t) for t in (0, 1, None)]
    assert ramp == ["rgb(68,1,84)", "rgb(253,231,37)", "rgb(160,160,160)"]
