"""The README's "Coming from MLflow" program runs, unchanged, against a live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

pytestmark = [
    pytest.mark.mlflow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
README = Path(__file__).resolve().parents[2] / "README.md"


def _section_code(title: str, lang: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.S)


def test_the_two_lines_a_team_changes_are_the_mlflow_client_settings() -> None:
    (shell,) = _section_code("Coming from MLflow", "bash")
    assigned = re.findall(r"^export (\w+)=", shell, re.M)
    assert assigned == ["MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"]


@pytest.mark.slow  # mlflow.sklearn.log_model infers requirements and imports skops
@pytest.mark.timeout(900)
def test_the_mlflow_program_runs_unchanged(mlflow_uri: str) -> None:
    (program,) = _section_code("Coming from MLflow", "python")
    namespace: dict[str, object] = {}
    exec(compile(program, str(README), "exec"), namespace)  # noqa: S102 - our own README

    import loopstack as ls

    X = namespace["X"]
    clf = namespace["clf"]
    loaded = ls.load_model("models:/churn@champion")  # the same model, loopstack's side
    assert (loaded.predict(X) == clf.predict(X)).all()  # type: ignore[attr-defined]
