"""executor="ray" on a local 2-CPU Ray instance the test starts: the same output as the
local executor, frame for frame."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import loopstack as ls

from .conftest import frame, write_parquet

pytestmark = pytest.mark.slow


def test_the_ray_executor_writes_what_the_local_one_writes(model_uri: str, tmp_path: Path) -> None:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail('Ray is not installed; CI must install it (pip install ".[ray]")')
        pytest.skip('Ray is not installed (pip install ".[ray]")')
    data = frame(4_000)
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_parquet(inputs / "a.parquet", data[:2_500], 500)
    write_parquet(inputs / "b.parquet", data[2_500:], 500)
    local = ls.predict_batch(model_uri, inputs, tmp_path / "local.parquet", chunk_rows=1_000)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        on_ray = ls.predict_batch(
            model_uri, inputs, tmp_path / "ray.parquet", chunk_rows=1_000, executor="ray"
        )
    finally:
        ray.shutdown()
    assert on_ray.rows == local.rows == 4_000 and on_ray.chunks == local.chunks
    pd.testing.assert_frame_equal(pd.read_parquet(on_ray.output), pd.read_parquet(local.output))
