"""Late ground truth: written to the feedback stream (bad input refused, nothing
written), joined back to many requests' rows by request id and row index (latest label
wins), and ingested on a schedule from SQLite, PostgreSQL and Parquet with a watermark."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import loopstack.monitoring as mon
from loopstack.errors import Invalid
from loopstack.monitoring._labels import default_events

START = pd.Timestamp("2026-01-01T00:00:00Z")


def _flat(n_requests: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per model row: requests of 1-4 rows each."""
    rows = []
    for i in range(n_requests):
        ts = START + pd.Timedelta(seconds=int(i))
        for r in range(int(rng.integers(1, 5))):
            rows.append(
                {
                    "ts": ts,
                    "request_id": f"req-{i}",
                    "row": r,
                    "prediction": int(rng.integers(0, 3)),
                }
            )
    return pd.DataFrame(rows)


def _feedback() -> pd.DataFrame:
    return default_events().read("feedback").to_pandas()


def test_row_labels_grouped_per_request_and_joined_back() -> None:
    rng = np.random.default_rng(0)
    flat = _flat(400, rng)
    truth = flat.assign(label=rng.integers(0, 3, size=len(flat)))
    labelled = truth.sample(frac=0.8, random_state=1)  # some rows never get a label
    labelled = labelled.assign(arrived=labelled["ts"] + pd.Timedelta("2h"))
    written = mon.log_labels(labelled, row="row", ts="arrived")
    assert written == labelled["request_id"].nunique()
    fb = _feedback()
    assert len(fb) == written
    one = fb[fb["request_id"] == labelled["request_id"].iloc[0]]["label"].iloc[0]
    assert isinstance(json.loads(one), list)
    joined = mon.join_labels(flat, default_events().read("feedback"))
    assert len(joined) == len(flat)
    expect = flat.merge(
        labelled[["request_id", "row", "label"]], on=["request_id", "row"], how="left"
    )
    got = joined["label"].to_numpy(dtype=object)
    want = expect["label"].to_numpy(dtype=object)
    have = pd.notna(want)
    assert (pd.isna(got) == ~have).all()
    assert (got[have].astype(int) == want[have].astype(int)).all()
    assert np.allclose(joined.loc[have, "label_delay_s"], 7200.0)
    assert joined.loc[~have, "label_delay_s"].isna().all()


def test_scalar_labels_latest_wins_and_list_labels() -> None:
    flat = pd.DataFrame(
        {
            "ts": [START] * 4,
            "request_id": ["a", "b", "b", "c"],
            "row": [0, 0, 1, 0],
            "prediction": [1, 0, 1, 0],
        }
    )
    mon.log_labels(
        pd.DataFrame({"request_id": ["a"], "label": [0], "ts": [START + pd.Timedelta("1min")]}),
        ts="ts",
    )
    mon.log_labels(
        pd.DataFrame({"request_id": ["a"], "label": [1], "ts": [START + pd.Timedelta("5min")]}),
        ts="ts",
    )
    mon.log_labels(
        pd.DataFrame(
            {"request_id": ["b"], "label": [[1, 1]], "ts": [START + pd.Timedelta("1min")]}
        ),
        ts="ts",
    )
    joined = mon.join_labels(flat, _feedback())
    assert joined["label"].tolist()[:3] == [1, 1, 1]
    assert pd.isna(joined["label"].iloc[3])
    assert joined["label_delay_s"].tolist()[:3] == [300.0, 60.0, 60.0]
    report = mon.performance(joined)
    assert report.rows[0]["labelled"] == 3 and report.rows[0]["label_coverage"] == 0.75


@pytest.mark.parametrize(
    ("frame", "kw", "match"),
    [
        (pd.DataFrame({"id": ["a"], "label": [1]}), {}, "'request_id'"),
        (pd.DataFrame({"request_id": ["a", None], "label": [1, 0]}), {}, "null request ids"),
        (pd.DataFrame({"request_id": ["a", "b"], "label": [1, object()]}), {}, "JSON-able"),
        (pd.DataFrame({"request_id": ["a"], "y": [1]}), {"label": "target"}, "'target'"),
        (
            pd.DataFrame({"request_id": ["a", "a"], "label": [1, 0], "row": [0, 0]}),
            {"row": "row"},
            "two labels",
        ),
        (
            pd.DataFrame({"request_id": ["a"], "label": [1], "t": ["never"]}),
            {"ts": "t"},
            "timestamps",
        ),
    ],
)
def test_bad_labels_are_invalid_and_nothing_is_written(
    frame: pd.DataFrame, kw: dict, match: str
) -> None:
    with pytest.raises(Invalid, match=match):
        mon.log_labels(frame, **kw)
    assert default_events().read("feedback").num_rows == 0


def _labels_table(n: int, offset: int, start: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [f"req-{i}" for i in range(offset, offset + n)],
            "label": [i % 2 for i in range(offset, offset + n)],
            "labelled_at": [(start + pd.Timedelta(seconds=i)).tz_convert(None) for i in range(n)],
        }
    )


def _ingest_twice(url: str) -> None:
    engine = sa.create_engine(url)
    _labels_table(50, 0, START).to_sql("labels", engine, index=False, if_exists="replace")
    kw = {"table": "labels", "ts_column": "labelled_at"}
    assert mon.ingest_labels(url, **kw) == 50
    assert mon.ingest_labels(url, **kw) == 0  # a re-run writes nothing twice
    _labels_table(30, 50, START + pd.Timedelta("1h")).to_sql(
        "labels", engine, index=False, if_exists="append"
    )
    engine.dispose()
    assert mon.ingest_labels(url, **kw) == 30
    fb = _feedback()
    assert len(fb) == 80 and fb["request_id"].nunique() == 80
    assert sorted(json.loads(v) for v in fb["label"]) == sorted(i % 2 for i in range(80))


def test_ingest_from_sqlite_with_a_watermark(tmp_path) -> None:
    _ingest_twice(f"sqlite:///{tmp_path / 'labels.db'}")


def test_ingest_from_postgresql_with_a_watermark(pg_url: str) -> None:
    _ingest_twice(pg_url)


def test_ingest_from_parquet_glob_and_bad_sources(tmp_path) -> None:
    _labels_table(20, 0, START).to_parquet(tmp_path / "a.parquet")
    glob = str(tmp_path / "*.parquet")
    assert mon.ingest_labels(glob, ts_column="labelled_at") == 20
    _labels_table(5, 20, START + pd.Timedelta("1h")).to_parquet(tmp_path / "b.parquet")
    assert mon.ingest_labels(glob, ts_column="labelled_at") == 5
    assert mon.ingest_labels(glob, ts_column="labelled_at") == 0
    with pytest.raises(Invalid, match="no column"):
        mon.ingest_labels(glob, ts_column="nope", state_key="other")
    with pytest.raises(Invalid, match="Parquet"):
        mon.ingest_labels(str(tmp_path / "missing-*.parquet"))
    with pytest.raises(Invalid, match="no table"):
        mon.ingest_labels(f"sqlite:///{tmp_path / 'x.db'}", table="labels")


@pytest.mark.slow
def test_labels_through_the_serving_feedback_route_and_log_labels_join_alike() -> None:
    import httpx

    from loopstack.server import create_serving_app
    from loopstack.serving import BatchSettings, EndpointSpec, PredictionLog, ServingRuntime
    from loopstack.store import open_stores
    from loopstack.store.events import EventLog
    from tests.conftest import ThreadedServer
    from tests.serving.conftest import log_models

    X, clf, _ = log_models()
    y = clf.predict(X)  # the truth used: the model's own answer, flipped for some rows
    runtime = ServingRuntime([EndpointSpec("iris", "models:/iris@champion")])
    runtime.load_all()
    plog = PredictionLog(EventLog(open_stores()), flush_interval_s=30)
    batching = BatchSettings(max_batch_size=64, max_latency_ms=50, max_queue=256)
    app = create_serving_app(runtime, start=False, batching=batching, prediction_log=plog)
    truth: dict[tuple[str, int], int] = {}
    try:
        with ThreadedServer(app) as server:
            for i in range(30):
                rows = X.iloc[i * 5 : i * 5 + 1 + i % 3]
                rid = f"srv-{i}"
                got = httpx.post(
                    f"{server.url}/endpoints/iris/predict",
                    json={"records": rows.to_dict("records")},
                    headers={"X-Request-ID": rid},
                )
                assert got.status_code == 200, got.text
                labels = [int((y[i * 5 + r] + (r == 1)) % 3) for r in range(len(rows))]
                truth.update({(rid, r): v for r, v in enumerate(labels)})
                if i % 2 == 0:  # half through the HTTP route, half through log_labels
                    body = [{"request_id": rid, "label": labels if len(labels) > 1 else labels[0]}]
                    assert (
                        httpx.post(f"{server.url}/endpoints/iris/feedback", json=body).status_code
                        == 200
                    )
                else:
                    mon.log_labels(
                        pd.DataFrame(
                            {"request_id": rid, "row": range(len(labels)), "label": labels}
                        ),
                        row="row",
                    )
            assert plog.flush(20)
    finally:
        plog.close()
    predictions = default_events().read("predictions").to_pandas()
    flat = []
    for rec in predictions.itertuples():
        for r, p in enumerate(json.loads(rec.output)["predict"]):
            flat.append({"ts": rec.ts, "request_id": rec.request_id, "row": r, "prediction": p})
    joined = mon.join_labels(pd.DataFrame(flat), default_events().read("feedback"))
    assert len(joined) == len(truth)
    assert joined["label"].notna().all()
    for rec in joined.itertuples():
        assert int(rec.label) == truth[(rec.request_id, rec.row)]
    row = mon.performance(joined, classes=[0, 1, 2]).rows[0]
    want = np.mean(
        [
            int(p) == truth[(rid, r)]
            for rid, r, p in zip(
                joined["request_id"], joined["row"], joined["prediction"], strict=True
            )
        ]
    )
    assert row["accuracy"] == pytest.approx(want) and row["label_coverage"] == 1.0
