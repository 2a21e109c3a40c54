"""The README's code blocks run, so the README cannot drift from the code.

Its Python blocks form one walk through loopstack (tracking, models, data, features):
each runs in the order written, in one namespace, in a fresh working directory and
``LOOPSTACK_HOME``, and each says the values the README's comments promise. The "Coming
from MLflow" program needs a server and the mlflow client:
tests/server/test_readme_mlflow.py runs it. The command-line blocks of "Projects, roles
and tokens" run in a shell; the install commands of "Two commands" are what ``.ci/run``
itself runs, and the benchmark commands are what the tables' numbers came from.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
WALK = [
    "Tracking in five lines",
    "Models: package, register, promote, load",
    "Data: versions, profiles, validation gates",
    "Features: definitions, point-in-time training data, online serving",
]


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(title: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(title), re.S)


def _python_sections() -> list[str]:
    """Every section title that holds a Python block."""
    text = README.read_text()
    titles = re.findall(r"^## (.+)$", text, re.M)
    return [t for t in titles if _blocks(t, "python")]


def test_every_python_block_of_the_readme_is_run_by_a_test() -> None:
    assert sorted(_python_sections()) == sorted(
        [*WALK, "Coming from MLflow", MONITORING, PIPELINES]
    )


MONITORING = "Monitoring: drift, quality, delayed labels, alerts, reports"
PIPELINES = "Pipelines and the closed loop"


def test_the_readme_pipeline_runs_as_a_file_and_its_commands_as_written(tmp_path: Path) -> None:
    """The block saved as train_flow.py and run with python, as the README says; then
    the commands of the bash block that need no run id."""
    (block,) = _blocks(PIPELINES, "python")
    (tmp_path / "train_flow.py").write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSTACK_")}
    env.update(LOOPSTACK_HOME=str(tmp_path / "home"), COLUMNS="80")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = run(sys.executable, "train_flow.py").splitlines()
    assert out[0].startswith("FINISHED {'roc_auc': 0.99")  # as its comment says
    statuses = [eval(line) for line in out[1:]]  # noqa: S307 - dicts the block printed
    assert set(statuses[0].values()) == {"CACHED"}
    assert statuses[1] == {
        "load": "CACHED",
        "split": "CACHED",
        "train": "FINISHED",
        "evaluate": "FINISHED",
    }
    loopstack = str(Path(sys.executable).with_name("loopstack"))
    (commands,) = _blocks(PIPELINES, "bash")
    for line in commands.splitlines():
        words = shlex.split(line, comments=True)
        if words and "RUN" not in words:
            run(loopstack, *words[1:])


def test_the_readme_monitoring_block_runs_and_says_what_it_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = _blocks(MONITORING, "python")
    namespace: dict[str, Any] = {}
    exec(compile(block, f"README.md ({MONITORING})", "exec"), namespace)  # noqa: S102
    report = namespace["report"]
    assert report.drifted_columns == ["amount"]  # the comment says so
    compared = namespace["estimated"].compare(namespace["realised"])
    # a calibrated model: the realised values lie mostly within the estimate's interval
    assert compared["within"].mean() >= 0.8


@pytest.fixture
def walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The README's Python walk, run block by block in ``tmp_path``: the namespace as
    each block left it."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    after = []
    for title in WALK:
        (block,) = _blocks(title, "python")
        exec(compile(block, f"README.md ({title})", "exec"), namespace)  # noqa: S102 - our own README
        after.append(dict(namespace))
    return after


@pytest.mark.slow  # fits a forest, exports it to ONNX
def test_the_readme_walk_runs_and_says_what_it_promises(walk: list[dict[str, Any]]) -> None:
    import loopstack as ls

    tracking, models, data, features = walk
    # tracking: the search finds the run (its last loss is 1/100 < 0.05)
    found = tracking["ls"].search_runs("churn", filter="metrics.loss < 0.05")
    assert found["run_id"].tolist() == [tracking["run"].info.run_id]
    # models: staging serves the fitted forest; lineage names the run and its dataset
    X_test = models["X_test"]
    assert (models["model"].predict(X_test) == models["clf"].predict(X_test)).all()
    upstream = ls.lineage(models["version"]).upstream
    assert {n.split(":")[0] for n in upstream} >= {"run", "dataset_version"}, upstream
    assert models["request"].state == "pending"
    # data: a sample of the training data passes the suite inferred from it
    assert data["report"].passed
    assert data["train"].profile["columns"]["age"]["min"] >= 18
    # features: point-in-time values (the 2-hour row of driver 7 is after the label time)
    train = features["train"]
    assert train["trips"].tolist() == [3, 9]
    online = features["store"].get_online_features([{"driver_id": 7}], ["driver_stats:rating"])
    assert online.to_dict()["rating"] == [4.7]


def test_a_team_of_one_approves_its_own_request_after_the_policy_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Models section tells a lone user, done as it says."""
    import loopstack as ls

    text = _section("Models: package, register, promote, load")
    (command,) = re.findall(r"`(loopstack projects policy [^`]+)`", text)
    pd = pytest.importorskip("pandas")
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    with ls.start_run(experiment="solo") as run:
        version = run.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), name="solo")
    reg = ls.get_registry()
    request = reg.request_promotion("solo", version.version)
    with pytest.raises(ls.Forbidden, match="--self-approval"):
        reg.approve(request.request_id)
    done = subprocess.run(
        [sys.executable, "-m", "loopstack.cli", *shlex.split(command)[1:]],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr
    reg.approve(request.request_id)
    assert reg.get_version_by_alias("solo", "production").version == version.version


def test_the_projects_commands_run_as_written(tmp_path: Path) -> None:
    (block,) = _blocks("Projects, roles and tokens", "")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    for line in block.strip().splitlines():
        command = line.split("#", 1)[0].strip()
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
