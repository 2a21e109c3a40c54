"""predict_batch with feature enrichment from real feature views: the model's f3 and f4
come from a Parquet-backed feature view, joined point-in-time from the offline store (at
each row's time, or at one ``as_of``) or read from the materialized online store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopstack as ls
from loopstack.errors import Invalid, NotFound
from loopstack.features import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource

from .conftest import COLUMNS, frame, write_parquet

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
ROWS = 600
LATE = 1000 + ROWS - 1  # this account's only feature row is after every input row's time


def _early(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (ids % 7 - 3).astype("float32") * 0.5, (ids % 5 - 2).astype("float32")


def _later(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (3 - ids % 7).astype("float32") * 0.5, (2 - ids % 5).astype("float32")


ACCOUNT = Entity("account", join_keys=["account_id"])


def _view(name: str, source: Any) -> FeatureView:
    schema = [Field("f3", "float32"), Field("f4", "float32")]
    return FeatureView(name, entities=[ACCOUNT], schema=schema, source=source)


@pytest.fixture
def store(ls_home: Path, tmp_path: Path) -> FeatureStore:
    """Feature view ``acct`` (f3, f4): every account has a row at T0 and a different one
    at T0+2h, except LATE, which has only the T0+2h row."""
    ids = np.arange(1000, 1000 + ROWS, dtype="int64")
    early_ids = ids[ids != LATE]
    e3, e4 = _early(early_ids)
    l3, l4 = _later(ids)
    table = pa.table(
        {
            "account_id": np.concatenate([early_ids, ids]),
            "event_timestamp": [T0] * len(early_ids) + [T0 + 2 * H] * len(ids),
            "f3": np.concatenate([e3, l3]),
            "f4": np.concatenate([e4, l4]),
        }
    )
    pq.write_table(table, tmp_path / "acct.parquet", row_group_size=256)
    fs = FeatureStore()
    view = _view("acct", FileSource(tmp_path / "acct.parquet", timestamp_field="event_timestamp"))
    fs.apply([ACCOUNT, view, FeatureService("acct_svc", features=["acct:f3", "acct:f4"])])
    return fs


def _input(tmp_path: Path, at: datetime) -> tuple[Path, pd.DataFrame]:
    data = frame(ROWS).drop(columns=["f3", "f4"])
    data["event_timestamp"] = pd.Timestamp(at).tz_localize(None)  # naive: UTC
    return write_parquet(tmp_path / "in.parquet", data, 100), data


def _expected(model_uri: str, data: pd.DataFrame, f3: np.ndarray, f4: np.ndarray) -> np.ndarray:
    full = data.assign(f3=f3, f4=f4)[COLUMNS]
    return ls.load_model(model_uri).model.predict_proba(full)  # type: ignore[no-any-return]


def _assert_scored_with_later_values(output: str, model_uri: str, data: pd.DataFrame) -> None:
    out = pd.read_parquet(output)
    l3, l4 = _later(data["account_id"].to_numpy())
    expected = _expected(model_uri, data, l3, l4)
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, rtol=1e-6)


def test_offline_enrichment_at_each_rows_time_is_point_in_time_correct(
    store: FeatureStore, model_uri: str, tmp_path: Path
) -> None:
    src, data = _input(tmp_path, T0 + H)  # between the two feature rows
    result = ls.predict_batch(
        model_uri,
        src,
        tmp_path / "out.parquet",
        key_columns=["account_id"],
        features=["acct:f3", "acct:f4"],
        timestamp_column="event_timestamp",
        chunk_rows=200,
        workers=2,
    )
    out = pd.read_parquet(result.output)
    assert out["account_id"].tolist() == data["account_id"].tolist()
    ids = data["account_id"].to_numpy()
    f3, f4 = _early(ids)
    late = ids == LATE
    f3[late], f4[late] = np.nan, np.nan  # its only row is later: not visible, not used
    expected = _expected(model_uri, data, f3, f4)
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), expected, rtol=1e-6)
    # the later values would score differently: the test can tell them apart
    l3, l4 = _later(ids)
    assert not np.allclose(_expected(model_uri, data, l3, l4), expected)
    # the same values as a training set built from the same rows
    training = store.get_historical_features(data, ["acct:f3", "acct:f4"])
    np.testing.assert_allclose(training["f3"].to_numpy(), f3)


def test_offline_enrichment_as_of_one_time_sees_the_later_rows(
    store: FeatureStore, model_uri: str, tmp_path: Path
) -> None:
    src, data = _input(tmp_path, T0)
    result = ls.predict_batch(
        model_uri,
        src,
        tmp_path / "out.parquet",
        features="acct_svc",
        as_of=T0 + 3 * H,
        chunk_rows=250,
        workers=1,
    )
    _assert_scored_with_later_values(result.output, model_uri, data)


def test_online_enrichment_reads_the_materialized_values(
    store: FeatureStore, model_uri: str, tmp_path: Path
) -> None:
    store.materialize(T0 - 24 * H, T0 + 3 * H)
    src, data = _input(tmp_path, T0)
    data_no_ts = data.drop(columns=["event_timestamp"])
    src = write_parquet(tmp_path / "in-online.parquet", data_no_ts, 100)
    result = ls.predict_batch(
        model_uri,
        src,
        tmp_path / "out.parquet",
        key_columns=["account_id"],
        features=["acct:f3", "acct:f4"],
        online=True,
        chunk_rows=300,
        workers=2,
    )
    _assert_scored_with_later_values(result.output, model_uri, data)


def test_bad_enrichment_is_refused_before_any_work(
    store: FeatureStore, model_uri: str, tmp_path: Path
) -> None:
    src, data = _input(tmp_path, T0)
    out = tmp_path / "out.parquet"
    with pytest.raises(Invalid, match="exactly one of as_of"):
        ls.predict_batch(model_uri, src, out, features=["acct:f3", "acct:f4"])
    with pytest.raises(NotFound, match="no feature 'f9'"):
        ls.predict_batch(model_uri, src, out, features=["acct:f9"], as_of=T0)
    with pytest.raises(Invalid, match="lacks column\\(s\\) 'f4'"):
        ls.predict_batch(model_uri, src, out, features=["acct:f3"], as_of=T0)
    with pytest.raises(Invalid, match="pass features="):
        ls.predict_batch(model_uri, src, out, as_of=T0)
    keyless = write_parquet(tmp_path / "keyless.parquet", data.drop(columns=["account_id"]), 100)
    with pytest.raises(Invalid, match="join key 'account_id'"):
        ls.predict_batch(model_uri, keyless, out, features=["acct:f3", "acct:f4"], as_of=T0)
    assert not out.exists() and not (tmp_path / "out.parquet.staging").exists()


def test_the_cli_enriches_from_a_feature_service_and_scores_a_dataset_version(
    store: FeatureStore, model_uri: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from loopstack.cli._app import app

    _, data = _input(tmp_path, T0)
    ls.register_dataset("accounts", data)
    out = tmp_path / "out.parquet"
    args = ["predict", "batch", model_uri, "--dataset", "accounts/1", "--output", str(out),
            "--feature-service", "acct_svc", "--as-of", "2024-01-01T03:00:00Z",
            "--workers", "1"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote 600 predictions" in res.output
    _assert_scored_with_later_values(str(out), model_uri, data)
    both = CliRunner().invoke(app, [*args[:-2], "--feature", "acct:f3", "--overwrite"])
    assert both.exit_code != 0 and "not both" in both.output


def test_a_view_over_an_in_memory_table_enriches_through_its_feature_store(
    model_uri: str, tmp_path: Path
) -> None:
    ids = np.arange(1000, 1000 + ROWS, dtype="int64")
    l3, l4 = _later(ids)
    table = pa.table(
        {"account_id": ids, "event_timestamp": [T0] * ROWS, "f3": l3, "f4": l4},
    )
    fs = FeatureStore()
    fs.apply([ACCOUNT, _view("acct_mem", table)])
    src, data = _input(tmp_path, T0 + H)
    result = ls.predict_batch(
        model_uri,
        src,
        tmp_path / "out.parquet",
        features=["acct_mem:f3", "acct_mem:f4"],
        timestamp_column="event_timestamp",
        feature_store=fs,  # it holds the table; a store opened afresh would not
        workers=1,
    )
    _assert_scored_with_later_values(result.output, model_uri, data)
