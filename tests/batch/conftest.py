"""A real classifier logged through loopstack and real Parquet input for batch tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

COLUMNS = [f"f{i}" for i in range(5)]


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))).astype("float32"), columns=COLUMNS)
    data.insert(0, "account_id", np.arange(rows, dtype="int64") + 1000)
    return data


def write_parquet(path: Path, data: pd.DataFrame, row_group_size: int) -> Path:
    pq.write_table(
        pa.Table.from_pandas(data, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


@pytest.fixture
def model_uri(ls_home: Path) -> str:
    import loopstack as ls

    train = frame(400, seed=1)
    y = (train["f0"] + train["f1"] > 0).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(train[COLUMNS], y)
    with ls.start_run(experiment="batch-tests") as run:
        version = run.log_model(clf, name="scorer", sample_input=train[COLUMNS].head(5))
    return f"models:/scorer/{version.version}"
