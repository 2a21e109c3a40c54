"""The web UI end to end: a real ``loopstack server`` process, runs logged by the real
``mlflow`` client, and Debian's headless Chromium driving the page through Playwright.
The links mlflow prints open their run and experiment; the runs table is filtered,
sorted and paginated by the server; with auth on the page asks for a token, sends it,
and shows what the server lets that token see. Each test saves screenshots under its
``tmp_path``."""

from __future__ import annotations

import io
import os
import platform
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ThreadedServer, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.mlflow, pytest.mark.slow]

#: (run name, optimizer, learning rate, accuracy at steps 0..3)
RUNS = [
    ("r-alpha", "adam", "0.1", [0.50, 0.61, 0.70, 0.72]),
    ("r-bravo", "sgd", "0.01", [0.40, 0.52, 0.61, 0.66]),
    ("r-charlie", "adam", "0.001", [0.30, 0.55, 0.80, 0.91]),
    ("r-delta", "sgd", "0.3", [0.20, 0.31, 0.35, 0.38]),
    ("r-echo", "adam", "0.05", [0.45, 0.58, 0.77, 0.84]),
]


def _png(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour (written here: no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x1f\x4e\x79" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _log_runs(mlflow: Any, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Log RUNS with the mlflow client; the links it prints after each run: the
    experiment's, and the run's by run name."""
    mlflow.set_experiment("ui-e2e")
    printed = io.StringIO()
    for name, opt, lr, accs in RUNS:
        with redirect_stdout(printed), mlflow.start_run(run_name=name):
            mlflow.log_params({"opt": opt, "lr": lr})
            for step, acc in enumerate(accs):
                mlflow.log_metric("acc", acc, step=step)
                mlflow.log_metric("loss", round(1 - acc, 4), step=step)
            mlflow.log_text(f"notes of {name}", "notes/readme.txt")
            if name == "r-charlie":
                mlflow.log_text('step,acc\n0,0.30\n3,"0.91, best"\n', "eval/table.csv")
                (tmp_path / "curve.png").write_bytes(_png(40, 20))
                mlflow.log_artifact(str(tmp_path / "curve.png"), "eval")
                mlflow.log_text("\x00\x01", "eval/weights.bin")
    runs: dict[str, str] = {}
    experiment = ""
    for line in printed.getvalue().splitlines():
        if "View run" in line:
            name = line.split("View run ", 1)[1].split(" at: ")[0]
            runs[name] = line.split(" at: ", 1)[1]
        elif "View experiment at: " in line:
            experiment = line.split(" at: ", 1)[1]
    return experiment, runs


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """The URLs the page requests and the errors it logs, from now on."""
    urls: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return urls, errors


def _column(page: Any, key: str) -> list[str]:
    return page.locator(f"#runs tbody td[data-key='{key}']").all_inner_texts()


def _axes(parcoords: Any) -> list[str]:
    return parcoords.locator("g.pc-axis").evaluate_all(
        "axes => axes.map(a => `${a.dataset.kind}.${a.dataset.key}`)"
    )


def _hover_line(page: Any, name: str) -> None:
    """The mouse on the first point of run ``name``'s line in the parallel coordinates."""
    line = page.locator(f"#compare-parcoords g.pc-run[data-name='{name}'] path.pc-line")
    line.scroll_into_view_if_needed()
    x, y = line.evaluate(
        "p => { const pt = p.getPointAtLength(0), m = p.getScreenCTM();"
        " return [pt.x * m.a + m.e, pt.y * m.d + m.f]; }"
    )
    page.mouse.move(x, y)


def _names(page: Any) -> list[str]:
    return page.locator("#runs tbody td:nth-child(2)").all_inner_texts()


def test_mlflow_links_open_the_run_and_the_runs_table_filters_sorts_and_pages(
    mlflow_uri: str, chromium: Any, tmp_path: Path
) -> None:
    import mlflow
    from playwright.sync_api import expect

    experiment_url, run_urls = _log_runs(mlflow, tmp_path)
    # the links the client printed are the UI's own link format
    assert experiment_url.startswith(f"{mlflow_uri}/#/experiments/")
    assert sorted(run_urls) == sorted(r[0] for r in RUNS)
    assert run_urls["r-charlie"].startswith(f"{experiment_url}/runs/")

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    urls, errors = _watch(page)

    # -- a run's page, from the link mlflow printed -----------------------------------
    page.goto(run_urls["r-charlie"])
    expect(page.locator("#run-name")).to_have_text("r-charlie")
    params = page.locator("#params-table tbody tr").all_inner_texts()
    assert [p.split("\t") for p in params] == [["lr", "0.001"], ["opt", "adam"]]
    metrics = [r.split("\t")[:3] for r in page.locator("#metrics-table tbody tr").all_inner_texts()]
    assert metrics == [["acc", "0.91", "3"], ["loss", "0.09", "3"]]
    charts = page.locator("#metric-charts svg.chart")
    expect(charts).to_have_count(2)
    acc_chart = page.locator("svg.chart[aria-label='acc']")
    assert acc_chart.locator("path").count() == 1  # the line through the history
    assert acc_chart.locator("circle").count() == 4  # one marker per step logged
    assert acc_chart.bounding_box()["height"] > 100
    # its artifacts: a folder opens, a file previews and downloads (with the page's
    # token, if any): text as text, a CSV as a table, an image as an image
    page.click("#artifacts button.dir >> text=notes/")
    readme = page.locator("#artifacts li[data-artifact='notes/readme.txt']")
    readme.locator("button.file").click()
    expect(page.locator("#artifact-preview pre")).to_have_text("notes of r-charlie")
    with page.expect_download() as download:
        readme.locator("button.download").click()
    assert download.value.suggested_filename == "readme.txt"
    assert Path(download.value.path()).read_text() == "notes of r-charlie"
    page.click("#artifacts button.dir >> text=eval/")
    page.click("#artifacts li[data-artifact='eval/table.csv'] button.file")
    table = page.locator("#artifact-preview table")
    expect(table.locator("th")).to_have_text(["step", "acc"])
    expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(["3", "0.91, best"])
    page.click("#artifacts li[data-artifact='eval/curve.png'] button.file")
    image = page.locator("#artifact-preview img")
    expect(image).to_have_attribute("alt", "eval/curve.png")
    page.wait_for_function("document.querySelector('#artifact-preview img').complete")
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [40, 20]
    page.click("#artifacts li[data-artifact='eval/weights.bin'] button.file")
    expect(page.locator("#artifact-preview")).to_have_text(
        "No preview for eval/weights.bin: download it."
    )
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    # -- the experiment's runs, from its link ------------------------------------------
    page.goto(experiment_url)
    expect(page.locator("#runs tbody tr")).to_have_count(len(RUNS))
    # newest first by default, as search_runs orders
    assert _names(page) == [r[0] for r in reversed(RUNS)]

    # filtered on the server in search_runs' language
    page.fill("#filter", "metrics.acc > 0.7 and params.opt = 'adam'")
    page.press("#filter", "Enter")
    expect(page.locator("#runs tbody tr")).to_have_count(3)
    assert sorted(_names(page)) == ["r-alpha", "r-charlie", "r-echo"]
    assert "filter=" in page.evaluate("location.hash")

    # sorted on the server by a metric: first click highest first, then lowest first
    page.click("#runs th[data-kind='metrics'][data-key='acc'] button")
    expect(page.locator("#runs th[data-key='acc']")).to_have_attribute("aria-sort", "descending")
    assert _names(page) == ["r-charlie", "r-echo", "r-alpha"]
    assert _column(page, "acc") == ["0.91", "0.84", "0.72"]
    page.screenshot(path=str(tmp_path / "runs-filtered-sorted.png"), full_page=True)
    page.click("#runs th[data-kind='metrics'][data-key='acc'] button")
    expect(page.locator("#runs th[data-key='acc']")).to_have_attribute("aria-sort", "ascending")
    assert _column(page, "acc") == ["0.72", "0.84", "0.91"]

    # sorted by a param (as strings, as in MLflow), over every run once the filter clears
    page.click("#runs th[data-kind='params'][data-key='lr'] button")
    expect(page.locator("#runs th[data-key='lr']")).to_have_attribute("aria-sort", "descending")
    page.fill("#filter", "")
    page.press("#filter", "Enter")
    expect(page.locator("#runs tbody tr")).to_have_count(len(RUNS))
    assert _column(page, "lr") == sorted((r[2] for r in RUNS), reverse=True)

    # a filter the grammar refuses: the server's message, under the box
    page.fill("#filter", "metrics.acc >> 1")
    page.press("#filter", "Enter")
    expect(page.locator("#filter-error")).to_contain_text("expected a value in the filter; got '>'")
    expect(page.locator("#runs")).to_have_count(0)

    # paginated on the server: 2 rows a page, by lowest loss
    page.goto(f"{experiment_url}?size=2&order_by=metrics.%60loss%60%20ASC")
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    by_loss = [r[0] for r in sorted(RUNS, key=lambda r: 1 - r[3][-1])]
    assert _names(page) == by_loss[:2]
    expect(page.locator("#previous")).to_be_disabled()
    page.click("#next")
    expect(page.locator("#page-number")).to_have_text("page 2")
    assert _names(page) == by_loss[2:4]
    page.click("#next")
    expect(page.locator("#page-number")).to_have_text("page 3")
    assert _names(page) == by_loss[4:]
    expect(page.locator("#next")).to_be_disabled()
    page.click("#previous")
    expect(page.locator("#page-number")).to_have_text("page 2")
    assert _names(page) == by_loss[2:4]

    # a run's name in the table opens its page
    page.click(f"#runs tbody a >> text={by_loss[2]}")
    expect(page.locator("#run-name")).to_have_text(by_loss[2])
    assert page.evaluate("location.hash").startswith("#/experiments/")

    # two runs picked in the table, compared: a chart per metric with a line per run,
    # the latest values, the params with the ones that differ marked
    page.goto(experiment_url)
    expect(page.locator("#compare")).to_be_disabled()
    page.check("#runs input[aria-label='select r-alpha']")
    page.check("#runs input[aria-label='select r-charlie']")
    page.click("#compare")
    expect(page.locator("#compare-charts svg.chart")).to_have_count(2)
    acc = page.locator("#compare-charts svg.chart[aria-label='acc']")
    assert acc.locator("path").count() == 2 and acc.locator("circle").count() == 8
    # in the order picked
    assert acc.locator(".chart-legend").all_text_contents() == ["r-alpha", "r-charlie"]
    latest = page.locator("#compare-latest tr[data-key='acc'] td").all_inner_texts()
    assert latest == ["0.72", "0.91"]
    params = page.locator("#compare-params tbody tr")
    assert params.evaluate_all("rows => rows.map(r => [r.dataset.key, r.className])") == [
        ["lr", "differs"],
        ["opt", "same"],
    ]
    page.check("#only-differences")
    expect(page.locator("#compare-params tr[data-key='opt']")).to_be_hidden()
    expect(page.locator("#compare-params tr[data-key='lr']")).to_be_visible()
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

    # the parallel coordinates: a line per run over the params that differ (lr, not
    # opt) and the metrics, coloured by a metric; hovering a line names its run
    pc = page.locator("#compare-parcoords svg.parcoords")
    expect(pc.locator("g.pc-run")).to_have_count(2)
    assert _axes(pc) == ["params.lr", "metrics.acc", "metrics.loss"]
    _hover_line(page, "r-charlie")
    expect(page.locator("#parcoords-hover")).to_have_text("r-charlie — acc 0.91")
    assert pc.locator(".pc-front path.pc-highlight").count() == 1

    # all five runs: five lines; the optimizer chosen as an axis is categorical
    page.goto(experiment_url)
    for name, *_ in RUNS:
        page.check(f"#runs input[aria-label='select {name}']")
    page.click("#compare")
    expect(pc.locator("g.pc-run")).to_have_count(len(RUNS))
    page.click("#parcoords-axes summary")
    page.check("#parcoords-axes input[data-kind='params'][data-key='opt']")
    assert _axes(pc) == ["params.lr", "params.opt", "metrics.acc", "metrics.loss"]
    expect(pc.locator("g.pc-run")).to_have_count(len(RUNS))
    opt = pc.locator("g.pc-axis[data-key='opt']")
    assert opt.get_attribute("data-scale") == "categorical"
    assert opt.locator("text.pc-tick").all_text_contents() == ["adam", "sgd"]
    # coloured by acc: five accuracies, five colours
    strokes = pc.locator("path.pc-line").evaluate_all(
        "ps => Object.fromEntries(ps.map(p =>"
        " [p.parentNode.dataset.name, p.getAttribute('stroke')]))"
    )
    assert len(set(strokes.values())) == len(RUNS), strokes
    _hover_line(page, "r-delta")
    expect(page.locator("#parcoords-hover")).to_have_text("r-delta — acc 0.38")
    page.screenshot(path=str(tmp_path / "compare-parcoords.png"))  # still hovered

    # the experiments list links to the runs
    page.goto(f"{mlflow_uri}/")
    page.click("#experiments a >> text=ui-e2e")
    expect(page.locator("#runs tbody tr")).to_have_count(len(RUNS))
    page.screenshot(path=str(tmp_path / "experiments-to-runs.png"), full_page=True)

    # nothing from elsewhere: this server, and blobs the page made of its answers
    assert [u for u in urls if not u.startswith((f"{mlflow_uri}/", f"blob:{mlflow_uri}/"))] == []
    # the one error the page logs is the refused filter's 422, shown under the box
    assert all("422" in e for e in errors), errors
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_with_auth_on_the_page_asks_for_a_token_sends_it_and_switches_projects(
    chromium: Any, ls_home: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack import auth
    from loopstack.store import open_stores

    db = open_stores().db
    auth.create_token(db, name="root", user="root")  # the first token: an admin's
    auth.create_user(db, "vera", actor="root")
    auth.add_member(db, "default", "vera", "viewer", actor="root")
    auth.create_project(db, "lab", actor="root")
    auth.add_member(db, "lab", "vera", "viewer", actor="root")
    secret = auth.create_token(db, name="vera", user="vera", actor="root")[0]
    with ls.start_run(experiment="churn", run_name="in-default", params={"lr": 0.1}):
        ls.log_metric("auc", 0.8)
    ls.set_project("lab")
    with ls.start_run(experiment="lab-only", run_name="in-lab"):
        ls.log_metric("auc", 0.9)
    ls.set_project(None)

    env = {**os.environ, "LOOPSTACK_HOME": str(ls_home), "LOOPSTACK_AUTH": "on"}
    proc, url = start_server(env)
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        sent: list[str | None] = []
        page.on(
            "request",
            lambda r: sent.append(r.headers.get("authorization")) if "/api/" in r.url else None,
        )
        page.goto(f"{url}/#/experiments/0")
        expect(page.locator("#token")).to_be_visible()  # no token yet: the sign-in form
        page.screenshot(path=str(tmp_path / "sign-in.png"))

        page.fill("#token", "not-a-token")
        page.click("form.login button")
        expect(page.locator("form.login .error")).to_contain_text("unknown, revoked")

        page.fill("#token", secret)
        page.click("form.login button")
        expect(page.locator("#who")).to_have_text("vera (viewer)")
        page.goto(f"{url}/#/")
        expect(page.locator("#experiments a")).to_have_text(["Default", "churn"])
        assert f"Bearer {secret}" in sent

        # the project from the header: the API answers with that project's experiments
        page.select_option("#project", "lab")
        expect(page.locator("#experiments a")).to_have_text(["lab-only"])
        page.click("#experiments a >> text=lab-only")
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "lab-runs.png"), full_page=True)

        # signing out forgets the token: the API refuses again, the form comes back
        page.click("#sign-out")
        expect(page.locator("#token")).to_be_visible()
        assert page.evaluate("localStorage.getItem('loopstack.token')") is None
    finally:
        stop_server(proc)


def test_names_are_shown_as_text_and_a_missing_run_or_page_says_so(
    chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    import loopstack as ls
    from loopstack.server import create_app

    hostile = '<img src=x onerror="window.pwned = 1">'
    with ls.start_run(
        experiment="<b>exp</b>", run_name=hostile, params={"p": "<script>window.pwned = 2</script>"}
    ) as run:
        ls.log_metric("m", float("nan"), step=0)  # a NaN: in the table, left out of the chart
        ls.log_metric("m", 1.0, step=1)
        run_id = run.run_id
    experiment_id = ls.get_run(run_id).experiment_id
    with ThreadedServer(create_app()) as server:
        page = chromium.new_page()
        page.goto(f"{server.url}/#/experiments/{experiment_id}/runs/{run_id}")
        expect(page.locator("#run-name")).to_have_text(hostile)
        expect(page.locator("#params-table td").nth(1)).to_have_text(
            "<script>window.pwned = 2</script>"
        )
        assert page.evaluate("window.pwned") is None
        assert page.locator("main img, main script").count() == 0
        assert page.locator("svg.chart[aria-label='m'] circle").count() == 1
        # what it ran on, from the tags captured at its start
        python = page.locator("#environment-table tr", has_text="Python").locator("td").nth(1)
        expect(python).to_have_text(platform.python_version())
        expect(page.locator("#environment summary")).to_contain_text("packages")
        page.goto(f"{server.url}/#/experiments/{experiment_id}")
        expect(page.locator("#runs tbody td a")).to_have_text(hostile)
        expect(page.locator("h1")).to_contain_text("<b>exp</b>")
        assert page.evaluate("window.pwned") is None

        page.goto(f"{server.url}/#/experiments/{experiment_id}/runs/no-such-run")
        expect(page.locator("main .error")).to_contain_text("404")
        expect(page.locator("main .error")).to_contain_text("no-such-run")
        page.goto(f"{server.url}/#/nowhere/at/all")
        expect(page.locator("h1")).to_have_text("No such page")
        page.goto(f"{server.url}/#/compare?runs={run_id}")
        expect(page.locator("main .error")).to_contain_text("Pick 2 to 100 runs")
        page.screenshot(path=str(tmp_path / "compare-one.png"))
