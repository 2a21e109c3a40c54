"""Migration 0005 (the metrics' NaN flag) keeps every metric point logged before it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from loopstack.store import open_stores
from loopstack.tracking import Metric
from loopstack.tracking._sql_store import SqlTrackingStore
from tests.store.test_migrations import _upgrade


@pytest.mark.empty_db
def test_points_logged_before_the_flag_read_back_unchanged_and_nan_works_after(
    use_db: str, ls_home: Path
) -> None:
    ls_home.mkdir(parents=True, exist_ok=True)
    _upgrade(use_db, "0003")
    engine = create_engine(use_db)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, experiment_id, name, status, start_time,"
                " lifecycle_stage, artifact_uri, user_id)"
                " VALUES ('r1', 0, 'old', 'FINISHED', 1, 'active', 'x', 'u')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO metrics (run_id, key, value, step, timestamp)"
                " VALUES ('r1', 'loss', 0.0, 0, 1), ('r1', 'loss', 0.25, 1, 2)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO latest_metrics (run_id, key, value, step, timestamp)"
                " VALUES ('r1', 'loss', 0.25, 1, 2)"
            )
        )
    engine.dispose()
    store = SqlTrackingStore(open_stores())  # opening migrates to head
    assert store.get_run("r1").metrics == {"loss": 0.25}
    assert [m.value for m in store.get_metric_history("r1", "loss")] == [0.0, 0.25]
    store.log_batch("r1", metrics=[Metric("loss", math.nan, 2, 3)])  # a finished run takes it
    assert math.isnan(store.get_run("r1").metrics["loss"])
    history = store.get_metric_history("r1", "loss")
    assert history[0].value == 0.0 and math.isnan(history[2].value)
