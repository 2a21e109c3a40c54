"""Running pipelines: records, cache hits and misses, retries, failure then resume."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import loopstack as ls
from loopstack.errors import Conflict, Invalid, NotFound, StepFailed
from loopstack.pipelines import _runner
from tests.pipelines import flows


@pytest.fixture(autouse=True)
def calls() -> list[str]:
    flows.CALLS.clear()
    return flows.CALLS


def statuses(run: Any) -> dict[str, str]:
    return {name: step.status for name, step in run.steps.items()}


def test_a_run_records_its_steps_outputs_and_costs(use_db: str, calls: list[str]) -> None:
    run = flows.training.run(rows=20)
    assert run.status == "FINISHED" and run.attempt == 1
    assert statuses(run) == dict.fromkeys(["load", "split", "train", "evaluate"], "FINISHED")
    assert calls == ["load", "split", "train", "evaluate"]
    assert run.output("evaluate") == {"mae": 0.0, "rows": 4.0}
    train_df, test_df = run.output("split")
    assert (len(train_df), len(test_df)) == (16, 4)
    assert len(run.output("split", "test")) == 4
    assert run.output("train").w == pytest.approx(2.0)
    kinds = {r["name"]: r["kind"] for s in run.steps.values() for r in s.outputs}
    assert kinds == {
        "load": "dataframe",
        "split.train": "dataframe",
        "split.test": "dataframe",
        "train": "pickle",
        "evaluate": "metrics",
    }
    step = run.steps["train"]
    assert step.attempts == 1 and step.wall_s is not None and step.cpu_s is not None
    assert step.peak_rss_bytes and step.cache_key and len(step.cache_key) == 64
    again = ls.pipelines.get_run(run.run_uuid)
    assert again.params == {"rows": 20, "lr": 0.1}
    assert again.entrypoint == "tests.pipelines.flows:training"
    assert [n["name"] for n in again.graph["nodes"]] == ["load", "split", "train", "evaluate"]
    assert [r.run_uuid for r in ls.pipelines.list_runs("training")] == [run.run_uuid]


def test_an_unchanged_run_is_all_cached_and_says_so(use_db: str, calls: list[str]) -> None:
    first = flows.training.run(rows=20)
    calls.clear()
    second = flows.training.run(rows=20)
    assert calls == []
    assert set(statuses(second).values()) == {"CACHED"}
    assert all(s.cached_from == first.run_uuid for s in second.steps.values())
    assert any("cached" in m for m in second.messages)
    assert second.output("evaluate") == first.output("evaluate")
    cost = {row.key: row for row in ls.pipelines.cost()}["training"]
    assert (cost.runs, cost.steps, cost.cached_steps) == (2, 8, 4)
    assert cost.wall_s > 0 and cost.peak_memory_mb > 0
    (project,) = ls.pipelines.cost(by="project")
    assert (project.key, project.runs) == ("default", 2)
    assert ls.pipelines.cost(since=4102444800) == []


def test_a_param_change_reruns_the_steps_it_reaches(use_db: str, calls: list[str]) -> None:
    flows.training.run(rows=20)
    calls.clear()
    run = flows.training.run(rows=20, lr=0.5)
    # train re-runs; its model comes out the same (lr does not move it), so evaluate's
    # inputs have the same content and evaluate is reused
    assert calls == ["train"]
    assert statuses(run) == {
        "load": "CACHED",
        "split": "CACHED",
        "train": "FINISHED",
        "evaluate": "CACHED",
    }


def test_inputs_count_by_content_not_by_which_run_made_them(use_db: str, calls: list[str]) -> None:
    flows.summing.run(n=3)
    calls.clear()
    same = flows.summing.run(n=3)  # source never caches, but makes the same content
    assert calls == ["source"]
    assert statuses(same) == {"source": "FINISHED", "total": "CACHED"}
    calls.clear()
    changed = flows.summing.run(n=4)
    assert calls == ["source", "total"]
    assert changed.output("total") == 6


def test_a_package_version_change_reruns_the_steps_that_import_it(
    use_db: str, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flows.training.run(rows=20)
    calls.clear()
    real = _runner.environment

    def bumped(fn: Any) -> dict[str, Any]:
        env = real(fn)
        if "pandas" in env["packages"]:
            env["packages"] = {**env["packages"], "pandas": "99.0"}
        return env

    monkeypatch.setattr(_runner, "environment", bumped)
    run = flows.training.run(rows=20)
    assert "load" in calls  # load refers to pd: its environment changed
    assert run.steps["load"].status == "FINISHED"


CODE = """
import loopstack as ls

@ls.step
def base(n: int = 3) -> int:
    return n

@ls.step
def scaled(v: int) -> int:
    return v * {factor}

@ls.pipeline
def flow(n: int = 3):
    scaled(base(n=n))
"""


def test_a_code_change_reruns_that_step_only(use_db: str, tmp_path: Path) -> None:
    one, two, three = tmp_path / "one.py", tmp_path / "two.py", tmp_path / "three.py"
    one.write_text(CODE.format(factor=2))
    two.write_text(CODE.format(factor=3))
    three.write_text(CODE.format(factor=2))
    first = ls.pipelines.run_entrypoint(f"{one}:flow")
    assert first.output("scaled") == 6
    assert first.entrypoint == f"{one.resolve()}:flow"
    changed = ls.pipelines.run_entrypoint(f"{two}:flow")
    assert statuses(changed) == {"base": "CACHED", "scaled": "FINISHED"}
    assert changed.output("scaled") == 9
    same_code_elsewhere = ls.pipelines.run_entrypoint(f"{three}:flow", {"n": 3})
    assert set(statuses(same_code_elsewhere).values()) == {"CACHED"}


def test_a_failing_step_is_retried_with_exponential_backoff(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(_runner, "_backoff_sleep", lambda s: pauses.append(s))
    counter = tmp_path / "count"
    run = flows.flaky_flow.run(path=str(counter))
    assert run.output("flaky") == 3
    assert run.steps["flaky"].attempts == 3
    assert [p for p in pauses if p in (0.01, 0.02)] == [0.01, 0.02]


def test_a_step_waiting_to_retry_leaves_its_project_slot_free(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopstack.store import open_stores
    from loopstack.store.metadata import lease_holder

    db = open_stores().db
    held_while_waiting: list[list[str]] = []

    def sleep(_: float) -> None:
        slots = [f"steps:{pid}:{i}" for pid in range(4) for i in range(8)]
        held_while_waiting.append([n for n in slots if lease_holder(db, n) is not None])

    monkeypatch.setattr(_runner, "_backoff_sleep", sleep)
    run = flows.flaky_flow.run(path=str(tmp_path / "count"))
    assert run.steps["flaky"].attempts == 3
    assert held_while_waiting == [[], []]


def test_a_step_failing_after_its_retries_fails_the_run_naming_it(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runner, "_backoff_sleep", lambda s: None)
    with pytest.raises(StepFailed, match=r"step 'flaky' failed after 3 attempt\(s\).*try 3 fails"):
        flows.flaky_flow.run(path=str(tmp_path / "count"), fail_times=5)
    (run,) = ls.pipelines.list_runs("flaky_flow")
    assert run.status == "FAILED" and "try 3 fails" in (run.error or "")


def test_a_failed_run_resumes_from_its_last_successful_step(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: list[str]
) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv(flows.FAIL_FLAG, str(flag))
    with pytest.raises(StepFailed, match="'evaluate' failed after 1 attempt.*says fail"):
        flows.training.run(rows=20)
    (failed,) = ls.pipelines.list_runs("training")
    failed = ls.pipelines.get_run(failed.run_uuid)
    assert failed.status == "FAILED" and "says fail" in (failed.error or "")
    step_error = failed.steps["evaluate"].error or ""
    assert step_error.startswith("RuntimeError: the flag file") and "flows.py" in step_error
    assert statuses(failed) == {
        "load": "FINISHED",
        "split": "FINISHED",
        "train": "FINISHED",
        "evaluate": "FAILED",
    }
    flag.unlink()
    calls.clear()
    resumed = ls.pipelines.resume(failed.run_uuid)
    assert calls == ["evaluate"]
    assert resumed.run_uuid == failed.run_uuid and resumed.attempt == 2
    assert resumed.status == "FINISHED" and resumed.error is None
    assert set(statuses(resumed).values()) == {"FINISHED"}
    with pytest.raises(Conflict, match="nothing to resume"):
        ls.pipelines.resume(failed.run_uuid)


def test_a_failure_skips_the_steps_after_it(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runner, "_backoff_sleep", lambda s: None)

    with pytest.raises(StepFailed):
        flows.flaky_chain.run(path=str(tmp_path / "count"))
    (run,) = ls.pipelines.list_runs("flaky_chain")
    assert statuses(ls.pipelines.get_run(run.run_uuid)) == {
        "flaky": "FAILED",
        "plus_one": "SKIPPED",
    }


def test_bad_input_to_a_run_is_refused_clearly(use_db: str) -> None:
    with pytest.raises(Invalid, match="the output 'bad_kind' is declared as DataFrame"):
        flows.bad_output.run()
    (run,) = ls.pipelines.list_runs("bad_output")
    assert run.status == "FAILED"
    with pytest.raises(Invalid, match=r"must be one of \['local', 'process', 'ray'\]"):
        flows.training.run(executor="quantum")
    with pytest.raises(Invalid, match="must be a JSON value"):
        flows.training.run(rows={1, 2})
    with pytest.raises(NotFound, match="no pipeline run"):
        ls.pipelines.resume("0" * 32)
    with pytest.raises(NotFound, match="missing"):
        ls.pipelines.run_entrypoint("no_such_module_here:flow")
    with pytest.raises(NotFound, match="does not exist"):
        ls.pipelines.load_entrypoint("/nowhere/flow.py:flow")
    with pytest.raises(NotFound, match="names nothing"):
        ls.pipelines.load_entrypoint("tests.pipelines.flows:nothing")
    with pytest.raises(Invalid, match="must name a @pipeline"):
        ls.pipelines.load_entrypoint("tests.pipelines.flows:load")
    with pytest.raises(Invalid, match="'by' parameter"):
        ls.pipelines.cost(by="team")


def test_each_step_run_is_a_tracked_child_run_with_lineage(use_db: str) -> None:
    from loopstack.store import open_stores
    from loopstack.store.metadata.schema import LineageEdge

    run = flows.training.run(rows=20)
    client = ls.TrackingClient()
    parent = client.get_run(run.tracking_run_id or "")
    assert parent.data.tags["loopstack.pipeline_run"] == run.run_uuid
    assert parent.info.status == "FINISHED"
    child = client.get_run(run.steps["train"].tracking_run_id or "")
    tags = child.data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert (tags["loopstack.step"], tags["loopstack.cache"]) == ("train", "miss")
    assert tags["loopstack.pipeline"] == "training"
    assert child.data.params == {"lr": "0.1"}
    assert set(child.data.metrics) >= {"wall_time_s", "cpu_time_s", "peak_memory_mb"}
    assert child.info.experiment_id == parent.info.experiment_id
    assert client.get_experiment(child.info.experiment_id).name == "training"

    edges = open_stores().db.read(
        lambda conn: conn.execute(
            select(
                LineageEdge.src_type, LineageEdge.src_id, LineageEdge.dst_type, LineageEdge.dst_id
            )
        ).all()
    )
    rid = child.info.run_id
    refs = {r["name"]: r["sha256"] for s in run.steps.values() for r in s.outputs}
    assert ("pipeline_artifact", refs["split.train"], "run", rid) in edges
    assert ("run", rid, "pipeline_artifact", refs["train"]) in edges

    cached = flows.training.run(rows=20)
    hit = client.get_run(cached.steps["train"].tracking_run_id or "")
    assert hit.data.tags["loopstack.cache"] == "hit"


def test_the_same_deterministic_pipeline_makes_byte_identical_artifacts(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = flows.training.run(rows=50)
    # a fresh artifact store and cache: everything is computed again
    monkeypatch.setenv("LOOPSTACK_ARTIFACTS_URL", str(tmp_path / "other-artifacts"))
    monkeypatch.setenv("LOOPSTACK_PROJECT", "parity")
    from loopstack.auth import create_project
    from loopstack.store import open_stores

    create_project(open_stores().db, "parity", actor="test")
    second = flows.training.run(rows=50)
    assert set(statuses(second).values()) == {"FINISHED"}
    digests = [
        {r["name"]: r["sha256"] for s in run.steps.values() for r in s.outputs}
        for run in (first, second)
    ]
    assert digests[0] == digests[1]


def test_the_project_step_limit_keeps_steps_of_two_runs_apart(
    use_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPSTACK_PIPELINE_MAX_CONCURRENT_STEPS", "1")
    log = tmp_path / "intervals.jsonl"
    errors: list[BaseException] = []

    def go(name: str) -> None:
        try:
            flows.intervals.run(log=str(log), run=name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = flows.read_intervals(log)
    assert sorted(tag for tag, _, _ in records) == ["r1-a", "r1-b", "r2-a", "r2-b"]
    spans = sorted((start, end) for _, start, end in records)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start


def test_the_step_limit_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from loopstack.config import settings

    assert settings().pipeline_max_concurrent_steps == 4
    monkeypatch.setenv("LOOPSTACK_PIPELINE_MAX_CONCURRENT_STEPS", "0")
    with pytest.raises(Invalid, match=">= 1"):
        settings()


def test_a_pipeline_wired_by_name_runs_and_resumes_by_its_module_name(use_db: str) -> None:
    run = flows.etl.run(n=4)
    assert run.entrypoint == "tests.pipelines.flows:etl"
    assert run.output("summed") == 6 and run.params == {"n": 4}
    assert ls.pipelines.load_entrypoint(run.entrypoint) is flows.etl
