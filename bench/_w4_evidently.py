"""W4's peer side, run by bench/w4_drift.py with bench/.venv-evidently's python.

    python bench/_w4_evidently.py REF.parquet CUR.parquet MODE [--repeat N]

MODE is ``default`` (Evidently's DataDriftPreset as it comes), ``ks_chi2`` (the preset
with ``num_method="ks"``, ``cat_method="chisquare"``) or ``scipy`` (plain
``scipy.stats.ks_2samp`` / ``chi2_contingency`` per column at alpha 0.05, no
correction). Both Parquet files are read before the clock starts; the clock covers the
drift computation and reading the per-column verdicts out of its result; imports and a
warm-up on the first 1,000 rows of each side are not timed. Prints one
JSON object: mode, version, seconds (one per repeat), max_rss_mb, and per column the
method, score, threshold and verdict.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from typing import Any

import pandas as pd

ALPHA = 0.05


def _evidently(ref: pd.DataFrame, cur: pd.DataFrame, mode: str) -> dict[str, dict[str, Any]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c])]
    categorical = [c for c in ref.columns if c not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    if mode == "default":
        preset = DataDriftPreset()
    else:
        preset = DataDriftPreset(num_method="ks", cat_method="chisquare")
    report = Report([preset], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    out: dict[str, dict[str, Any]] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            out[config["column"]] = {
                "method": config.get("method"),
                "score": metric["value"],
                "threshold": config.get("threshold"),
            }
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            out[params["column"]]["drifted"] = test["status"] == "FAIL"
    return out


def _scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, dict[str, Any]]:
    import numpy as np
    from scipy import stats

    out: dict[str, dict[str, Any]] = {}
    for name in ref.columns:
        a, b = ref[name].dropna(), cur[name].dropna()
        if pd.api.types.is_numeric_dtype(a):
            p = float(stats.ks_2samp(a.to_numpy(float), b.to_numpy(float)).pvalue)
            method = "ks_2samp"
        else:
            table = pd.concat([a.value_counts(), b.value_counts()], axis=1).fillna(0)
            p = float(stats.chi2_contingency(np.asarray(table.T, dtype=float))[1])
            method = "chi2_contingency"
        out[str(name)] = {"method": method, "score": p, "threshold": ALPHA, "drifted": p < ALPHA}
    return out


def main() -> None:
    """Run one mode on the two files and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("current")
    parser.add_argument("mode", choices=["default", "ks_chi2", "scipy"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    ref, cur = pd.read_parquet(args.reference), pd.read_parquet(args.current)

    def run(r: pd.DataFrame, c: pd.DataFrame) -> dict[str, dict[str, Any]]:
        return _scipy(r, c) if args.mode == "scipy" else _evidently(r, c, args.mode)

    seconds, columns = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(ref.head(1000), cur.head(1000))  # imports and one-time set-up, untimed
        for _ in range(args.repeat):
            start = time.perf_counter()
            columns = run(ref, cur)
            seconds.append(time.perf_counter() - start)
    if args.mode == "scipy":
        import scipy

        version = f"scipy {scipy.__version__}"
    else:
        import evidently

        version = f"evidently {evidently.__version__}"
    print(
        json.dumps(
            {
                "mode": args.mode,
                "version": version,
                "seconds": seconds,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "columns": columns,
            }
        )
    )


if __name__ == "__main__":
    main()
