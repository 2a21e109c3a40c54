"""Long work says what it is doing: a progress line on stderr (on a terminal, or with
LOOPSTACK_PROGRESS=always), nothing with --quiet or when piped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from loopstack.cli import app


@pytest.fixture
def parquet(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path / "big.parquet"
    pd.DataFrame({"a": rng.normal(size=50_000), "b": rng.integers(0, 9, 50_000)}).to_parquet(path)
    return str(path)


def _invoke(*args: str, progress: str | None = None) -> tuple[int, str]:
    env = {"COLUMNS": "120", "LOOPSTACK_PROGRESS": progress or "auto", "LOOPSTACK_QUIET": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.exit_code, result.stderr


def test_register_validate_and_profile_name_their_phases(parquet: str) -> None:
    _, err = _invoke("data", "register", "big", parquet, progress="always")
    assert "registering dataset big" in err and "done" in err
    _, err = _invoke("data", "profile", parquet, progress="always")
    assert "profiling big.parquet" in err
    _, err = _invoke("data", "validate", "big", "--infer-from", "big", progress="always")
    assert "validating big/1 against suite" in err


def test_quiet_and_piped_output_have_no_progress(parquet: str) -> None:
    _, err = _invoke("--quiet", "data", "register", "big", parquet, progress="auto")
    assert err == ""
    _, err = _invoke("data", "profile", parquet)  # CliRunner's stderr is not a terminal
    assert err == ""


def test_logging_a_model_names_its_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from sklearn.linear_model import LogisticRegression

    import loopstack as ls

    monkeypatch.setenv("LOOPSTACK_PROGRESS", "always")
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with ls.start_run(experiment="progress") as run:
        run.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), name="prog")
    text = captured.getvalue()
    assert "logging model prog" in text and "done" in text


def test_training_sets_and_materialization_name_their_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys
    from datetime import UTC, datetime, timedelta

    import loopstack as ls

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    source = tmp_path / "stats.parquet"
    pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [t0, t0], "trips": [3, 4]}).to_parquet(
        source
    )
    driver = ls.Entity("driver", join_keys=["driver_id"])
    stats = ls.FeatureView(
        "stats", entities=[driver], schema=[ls.Field("trips", "int64")], source=str(source)
    )
    store = ls.FeatureStore()
    store.apply([driver, stats])
    monkeypatch.setenv("LOOPSTACK_PROGRESS", "always")
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    labels = pd.DataFrame({"driver_id": [1], "event_timestamp": [t0 + timedelta(hours=1)]})
    store.get_historical_features(labels, ["stats:trips"], register_as="train")
    store.materialize(t0 - timedelta(days=1), t0 + timedelta(days=1))
    text = captured.getvalue()
    assert "building a training set from 1 feature view(s)" in text
    assert "materializing" in text and "stats" in text
