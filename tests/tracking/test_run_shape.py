"""A run reads as MLflow code expects (``run.info``, ``run.data``) and prints briefly."""

from __future__ import annotations

import loopstack as ls


def test_get_run_offers_mlflows_info_and_data() -> None:
    ls.set_experiment("shape")
    with ls.start_run(run_name="r1") as run:
        ls.log_param("lr", 0.1)
        ls.log_metric("auc", 0.91, step=0)
        ls.log_metric("auc", 0.93, step=1)
        ls.set_tag("team", "churn")
    got = ls.get_run(run.info.run_id)
    assert got.info.run_id == got.info.run_uuid == run.info.run_id
    assert got.info.run_name == "r1" and got.info.status == "FINISHED"
    assert got.info.experiment_id == got.experiment_id
    assert got.info.end_time is not None and got.info.start_time <= got.info.end_time
    assert got.info.artifact_uri == got.artifact_uri
    assert got.info.lifecycle_stage == "active"
    assert got.data.metrics == {"auc": 0.93}
    assert got.data.params == {"lr": "0.1"}
    assert got.data.tags["team"] == "churn"


def test_a_runs_repr_is_short_whatever_its_tags_hold() -> None:
    with ls.start_run() as run:
        ls.log_metrics({f"m{i}": i / 3 for i in range(8)})
    got = ls.get_run(run.info.run_id)
    assert len(str(got.tags)) > 1000  # the captured environment
    text = repr(got)
    assert len(text) < 400, text
    assert text.startswith(f"Run(run_id={got.run_id!r}")
    assert "m0=0, m1=0.3333" in text and "… 3 more" in text
    assert f"tags={len(got.tags)}" in text
