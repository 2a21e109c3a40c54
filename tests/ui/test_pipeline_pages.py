"""The pipelines' pages end to end: a real pipeline run three times (the second with a
new learning rate, so its upstream steps come from the cache; the third with one that
makes ``train`` fail), served by a server in this process and opened in Chromium. The
list shows each run's steps done, cache hits and cost; a run's page draws its graph
with each step's box coloured by its status, an arrow per data flow, and a table of the
steps linking each to its tracked run. Screenshots under ``tmp_path``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import loopstack as ls
from tests.conftest import ThreadedServer
from tests.serving.conftest import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@ls.step
def load(rows: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows), "y": [2 * v + 1 for v in range(rows)]})


@ls.step
def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(x2=frame["x"] ** 2)


@ls.step
def train(frame: pd.DataFrame, lr: float = 0.1) -> float:
    if lr < 0:
        raise ValueError(f"the learning rate must be positive; got {lr}")
    return float((frame["y"] * lr).mean())


@ls.step
def report(frame: pd.DataFrame) -> int:
    return len(frame)


@ls.pipeline(name="ui-flow")
def flow(rows: int = 50, lr: float = 0.1):
    table = features(load(rows=rows))
    train(table, lr=lr)
    report(table)


STEPS = ["load", "features", "train", "report"]
RELEASE = threading.Event()


@ls.step(cache=False)
def prepare() -> int:
    return 1


@ls.step(cache=False)
def held(value: int) -> int:
    assert RELEASE.wait(60), "the test never released the step"
    return value + 1


@ls.pipeline(name="ui-held")
def held_flow():
    held(prepare())


def test_the_pipeline_pages_draw_the_graph_with_each_step_status_and_cache_hits(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from loopstack.server import create_app

    first = flow.run(rows=50, lr=0.1)
    second = flow.run(rows=50, lr=0.2)
    with pytest.raises(ls.errors.LoopstackError) as failed_run:
        flow.run(rows=50, lr=-1.0)
    third = failed_run.value.pipeline_run  # type: ignore[attr-defined]
    assert first.status == second.status == "FINISHED"
    assert {s: r.status for s, r in second.steps.items()} == {
        "load": "CACHED",
        "features": "CACHED",
        "train": "FINISHED",
        "report": "CACHED",
    }

    with ThreadedServer(create_app()) as server:
        listed = httpx.get(f"{server.url}/api/v1/pipelines/runs", timeout=30).json()["runs"]
        assert [r["run_uuid"] for r in listed] == [third, second.run_uuid, first.run_uuid]
        cost = listed[1]["cost"]
        assert (cost["steps"], cost["cached_steps"]) == (4, 3)
        assert cost["cpu_s"] == pytest.approx(sum(r.cpu_s or 0 for r in second.steps.values()))
        shown = httpx.get(f"{server.url}/api/v1/pipelines/runs/{second.run_uuid}", timeout=30)
        experiment = shown.json()["experiment_id"]
        assert experiment == ls.get_run(second.tracking_run_id).info.experiment_id

        page = chromium.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{server.url}/#/")
        page.click("header nav a >> text=Pipelines")
        rows = page.locator("#pipeline-runs tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0).locator("td").nth(2)).to_have_text("FAILED")
        row = page.locator(f"#pipeline-runs tr[data-run='{second.run_uuid}']")
        expect(row.locator("td").nth(1)).to_have_text("ui-flow")
        expect(row.locator("td").nth(2)).to_have_text("FINISHED")
        expect(row.locator("td.steps")).to_have_text("4/4")
        expect(row.locator("td.cache-hits")).to_have_text("3")
        expect(row.locator("td.cost")).to_contain_text("CPU ")
        expect(
            page.locator(f"#pipeline-runs tr[data-run='{first.run_uuid}'] td.cache-hits")
        ).to_have_text("0")
        page.screenshot(path=str(tmp_path / "pipeline-runs.png"), full_page=True)

        # the second run: its graph, the cached steps drawn as cached, train as succeeded
        row.locator("td a").first.click()
        expect(page.locator("#pipeline-run")).to_contain_text(second.run_uuid)
        nodes = page.locator("#dag svg.dag g.dag-node")
        expect(nodes).to_have_count(4)
        statuses = {
            n: page.locator(f"#dag g[data-step='{n}']").get_attribute("data-status") for n in STEPS
        }
        assert statuses == {
            "load": "cached",
            "features": "cached",
            "train": "succeeded",
            "report": "cached",
        }
        edges = page.locator("#dag g.dag-edge")
        flows = {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in edges.all()}
        assert flows == {("load", "features"), ("features", "train"), ("features", "report")}
        # the boxes stand in columns by depth: load, then features, then train and report
        x = {
            n: float(page.locator(f"#dag g[data-step='{n}'] rect").get_attribute("x") or 0)
            for n in STEPS
        }
        assert x["load"] < x["features"] < x["train"] == x["report"]
        table = page.locator("#steps tbody tr")
        expect(table).to_have_count(4)
        expect(page.locator("#steps tr[data-step='load'] td.cached")).to_have_text("yes")
        expect(page.locator("#steps tr[data-step='train'] td.cached")).to_have_text("no")
        expect(page.locator("#step-counts")).to_have_text("4/4 done, 3 from the cache")
        expect(page.locator("#run-cost")).to_contain_text("peak ")
        page.screenshot(path=str(tmp_path / "pipeline-cached.png"), full_page=True)
        # a step's tracked run opens its run page
        page.click("#steps tr[data-step='train'] td:nth-child(8) a")
        expect(page.locator("#run-name")).to_have_text("train")
        assert f"#/experiments/{experiment}/runs/" in page.url

        # the failed run: train failed with its error, what never started is pending
        page.goto(f"{server.url}/#/pipelines/{third}")
        expect(page.locator("#dag g[data-step='train']")).to_have_attribute("data-status", "failed")
        expect(page.locator("#dag g[data-step='load']")).to_have_attribute("data-status", "cached")
        expect(page.locator("#steps tr[data-step='train'] td.step-error")).to_contain_text(
            "the learning rate must be positive"
        )
        expect(page.locator("#run-status")).to_have_text("FAILED")
        page.screenshot(path=str(tmp_path / "pipeline-failed.png"), full_page=True)

        # a run that is not there: the server's 404, as it wrote it
        page.goto(f"{server.url}/#/pipelines/nope")
        expect(page.locator("main .error")).to_contain_text("404: no pipeline run 'nope'")


def test_a_running_pipeline_page_follows_its_steps_until_the_run_ends(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from loopstack.server import create_app

    RELEASE.clear()
    done: list[Any] = []
    runner = threading.Thread(target=lambda: done.append(held_flow.run()))
    runner.start()
    try:
        with ThreadedServer(create_app()) as server:
            url = f"{server.url}/api/v1/pipelines/runs?pipeline=ui-held"
            eventually(lambda: bool(httpx.get(url, timeout=30).json()["runs"]))
            page = chromium.new_page(viewport={"width": 1300, "height": 800})
            page.goto(f"{server.url}/#/pipelines")
            row = page.locator("#pipeline-runs tr[data-pipeline='ui-held']")
            expect(row.locator("td").nth(2)).to_have_text("RUNNING")
            row.locator("td a").first.click()
            held_box = page.locator("#dag g[data-step='held']")
            # the page follows the run: held starts once prepare has finished
            expect(held_box).to_have_attribute("data-status", "running", timeout=20_000)
            expect(page.locator("#dag g[data-step='prepare']")).to_have_attribute(
                "data-status", "succeeded"
            )
            expect(page.locator("#run-status")).to_have_text("RUNNING")
            page.screenshot(path=str(tmp_path / "pipeline-running.png"), full_page=True)
            RELEASE.set()
            expect(held_box).to_have_attribute("data-status", "succeeded", timeout=20_000)
            expect(page.locator("#run-status")).to_have_text("FINISHED")
            expect(page.locator("#step-counts")).to_have_text("2/2 done, 0 from the cache")
    finally:
        RELEASE.set()
        runner.join(60)
    assert done and done[0].status == "FINISHED"
