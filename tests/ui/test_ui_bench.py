"""bench/ui_bench.py's own logic, without a server or a browser: the seeded runs both
sides are given (loopstack's bulk rows and MLflow's client, bench/_ui_mlflow.py), and
the side-by-side table, where an MLflow request over its timeout is shown as such."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "ui_bench.py"
    spec = importlib.util.spec_from_file_location("ui_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ui_bench"] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_both_sides_get_the_same_runs_of_the_stated_shape() -> None:
    now = 1_800_000_000_000
    ten = list(bench.seeded_runs(10, 14, now))
    assert list(bench.seeded_runs(10, 14, now)) == ten  # seeded: every call the same
    assert list(bench.seeded_runs(10, 15, now)) != ten
    names = [r[1] for r in ten]
    assert names == [f"run-{i:06d}" for i in range(10)]
    for _, _, start, end, params, metrics in ten:
        assert len(params) == bench.N_PARAMS and len(metrics) == bench.N_METRICS
        assert all(isinstance(v, str) for v in params.values())
        assert start < end <= now + 99_000
    # newest last, a second apart, as the runs page's default order expects
    assert [b[2] - a[2] for a, b in zip(ten, ten[1:], strict=False)] == [1000] * 9
    assert len({r[0] for r in ten}) == 10


def test_the_side_by_side_table_shows_the_ratio_and_a_timed_out_search(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def stats(ms: float) -> dict[str, float]:
        return {"median_ms": ms, "min_ms": ms - 1, "max_ms": ms + 1}

    results: dict[str, Any] = {
        "api": {"first page": stats(100.0), "order by metrics.m7 DESC": stats(50.0)},
        "mlflow_api": {
            "first page": stats(450.0),
            "order by metrics.m7 DESC": {"timeout_s": 120.0},
        },
        "browser": {"compare 100 runs: rendered": stats(800.0)},
        "mlflow_browser": {},  # not measured
    }
    bench.print_side_by_side(results)
    rows = capsys.readouterr().out.splitlines()
    assert (
        rows[2]
        == "| `runs/search` (HTTP), first page | 100 ms (99-101) | 450 ms (449-451) | 4.5x |"
    )
    assert rows[3] == (
        "| `runs/search` (HTTP), order by metrics.m7 DESC | 50 ms (49-51) "
        "| > 120 s (timed out) | > 2,400x |"
    )
    assert rows[4] == "| Chromium: compare 100 runs: rendered | 800 ms (799-801) |  |  |"
