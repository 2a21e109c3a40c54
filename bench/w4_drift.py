"""W4: drift, a reference and a current frame of 100k rows x 50 columns, 13 known drifts.

loopstack's ``ls.monitoring.drift`` against Evidently on the same Parquet files, with
plain scipy per-column tests as a yardstick. One command:

    python bench/w4_drift.py [--rows 100000] [--seed 0] [--repeat 3] [--peer-repeat 1]

The data (bench/_w4_data.py, seeded): 40 numeric and 10 categorical columns; 13 carry
an injected drift (mean shifts of 0.01 .. 1 sd, scale changes of 5/20/50 %, category
moves of TV 0.02/0.05/0.2), the other 37 (30 numeric, 7 categorical) none. Measured:

  (a) Evidently DataDriftPreset as it comes
  (b) Evidently DataDriftPreset(num_method="ks", cat_method="chisquare")
  (c) scipy ks_2samp / chi2_contingency per column at alpha 0.05, no correction
  (d) loopstack ``drift(ref, cur)`` at its defaults
  (e) loopstack ``drift(ref, cur, require_effect=False)``: the tests alone (BH, 0.05)

(a)-(c) run in bench/.venv-evidently (``bash bench/setup_monitoring_env.sh``) as a
subprocess (bench/_w4_evidently.py); (d) and (e) in this interpreter, best of
``--repeat``. Every side reads the same files before its clock starts. Printed: wall
time, drifts caught of 13 (and which), false alarms of 37, speed ratios, loopstack's
peak memory, and the issue's targets met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _w4_data as data

BENCH = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = str(BENCH / ".venv-evidently" / "bin" / "python")
MODES = {
    "default": "(a) Evidently DataDriftPreset, default",
    "ks_chi2": "(b) Evidently preset, KS / chi-squared",
    "scipy": "(c) scipy ks_2samp / chi2_contingency",
}


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _score(verdicts: dict[str, bool], drifts: list[data.Injected]) -> dict[str, Any]:
    drifted = {d.column for d in drifts}
    undrifted = [c for c in data.NUMERIC + data.CATEGORICAL if c not in drifted]
    return {
        "caught": [d.label for d in drifts if verdicts.get(d.column)],
        "missed": [d.label for d in drifts if not verdicts.get(d.column)],
        "false_alarms": [c for c in undrifted if verdicts.get(c)],
        "undrifted": len(undrifted),
    }


def _loopstack(ref: Any, cur: Any, repeat: int) -> dict[str, dict[str, Any]]:
    import loopstack as ls

    options: dict[str, dict[str, Any]] = {"defaults": {}, "test_alone": {"require_effect": False}}
    seconds: dict[str, list[float]] = {k: [] for k in options}
    reports: dict[str, Any] = {}
    for _ in range(repeat):  # interleaved, so background load hits both alike
        for key, opts in options.items():
            start = time.perf_counter()
            reports[key] = ls.monitoring.drift(ref, cur, **opts)
            seconds[key].append(time.perf_counter() - start)
    tracemalloc.start()
    ls.monitoring.drift(ref, cur)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {}
    for key, report in reports.items():
        out[key] = {
            "seconds": seconds[key],
            "verdicts": {c.column: bool(c.drifted) for c in report.columns},
            "peak_mb": peak / 2**20 if key == "defaults" else None,
        }
    return out


def _peer(python: str, ref: Path, cur: Path, mode: str, repeat: int) -> dict[str, Any]:
    helper = str(BENCH / "_w4_evidently.py")
    proc = subprocess.run(
        [python, helper, str(ref), str(cur), mode, "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        env={**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["verdicts"] = {c: bool(v.get("drifted")) for c, v in result["columns"].items()}
    return result


def main() -> int:
    """Generate the data, run every side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="loopstack and scipy: best of N")
    parser.add_argument("--peer-repeat", type=int, default=1, help="Evidently: best of N")
    parser.add_argument("--evidently-python", default=EVIDENTLY_PYTHON)
    parser.add_argument("--no-evidently", action="store_true", help="loopstack alone")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    import pandas as pd

    import loopstack

    peers = not args.no_evidently
    if peers and not Path(args.evidently_python).exists():
        print(
            f"no peer environment at {args.evidently_python}: create it with "
            "`bash bench/setup_monitoring_env.sh` (or pass --no-evidently)",
            file=sys.stderr,
        )
        return 2
    print(
        f"W4 drift | loopstack {_git_head()} ({Path(loopstack.__file__).parent}) | "
        f"Python {platform.python_version()} | {os.cpu_count()} CPUs | "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC | load {os.getloadavg()[0]:.1f}"
    )
    print(f"reference {args.rows:,} rows, current {args.rows:,} rows, 50 columns, seed {args.seed}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="w4-") as tmp:
        ref_path, cur_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        ref_df, cur_df, drifts = data.generate(args.rows, seed=args.seed)
        ref_df.to_parquet(ref_path)
        cur_df.to_parquet(cur_path)
        del ref_df, cur_df
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ours = _loopstack(ref, cur, args.repeat)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["(d) loopstack drift(), defaults"] = ours["defaults"]
        results["(e) loopstack, require_effect=False"] = ours["test_alone"]
        if peers:
            for mode, title in MODES.items():
                repeat = args.repeat if mode == "scipy" else args.peer_repeat
                print(f"running {title} ...", file=sys.stderr, flush=True)
                results[title] = _peer(args.evidently_python, ref_path, cur_path, mode, repeat)
    versions = sorted({r["version"] for r in results.values() if "version" in r})
    if versions:
        print("peers: " + ", ".join(versions))
    print()
    print("| engine | seconds (best) | drifts caught / 13 | missed | false alarms / 37 |")
    print("| --- | --- | --- | --- | --- |")
    order = [t for t in MODES.values() if t in results] + [t for t in results if "loopstack" in t]
    for title in order:
        r = results[title]
        s = _score(r["verdicts"], drifts)
        r.update(s, best=min(r["seconds"]))
        fa = ", ".join(s["false_alarms"]) or "-"
        print(
            f"| {title} | {r['best']:.3f} | {len(s['caught'])} | {', '.join(s['missed']) or '-'} | "
            f"{len(s['false_alarms'])} ({fa}) |"
        )
    print()
    print("| drift | column | " + " | ".join(t.split(")")[0] + ")" for t in order) + " |")
    print("| --- | --- |" + " --- |" * len(order))
    for d in drifts:
        marks = ["caught" if results[t]["verdicts"].get(d.column) else "-" for t in order]
        print(f"| {d.label} | {d.column} | " + " | ".join(marks) + " |")
    print()
    ls_best = results["(d) loopstack drift(), defaults"]["best"]
    ls_alone = results["(e) loopstack, require_effect=False"]["best"]
    print(
        f"loopstack peak memory: {ours['defaults']['peak_mb']:.1f} MiB traced (tracemalloc) "
        f"during one drift() call; process max RSS {rss_after:.0f} MiB ({rss_before:.0f} MiB "
        "before the loopstack runs, with both frames loaded)"
    )
    for title in MODES.values():
        if title in results:
            r = results[title]
            print(
                f"{title}: {r['best'] / ls_best:.1f}x loopstack's default time, "
                f"{r['best'] / ls_alone:.1f}x its test-alone time; "
                f"peer process max RSS {r['max_rss_mb']:.0f} MiB"
            )
    print()
    d_caught = len(results["(d) loopstack drift(), defaults"]["caught"])
    big = [d.label for d in drifts if d.size >= 0.05]
    d_big = [x for x in big if x in results["(d) loopstack drift(), defaults"]["caught"]]
    e_caught = len(results["(e) loopstack, require_effect=False"]["caught"])
    limit = 0.05 * 37
    targets = [
        (
            f"defaults catch every drift >= 0.05 sd / TV 0.05 ({len(d_big)} of {len(big)}; "
            f"{d_caught} of 13 in all)",
            len(d_big) == len(big),
        ),
        (f"test alone catches >= 12 of 13 ({e_caught})", e_caught >= 12),
    ]
    for title in ("(d) loopstack drift(), defaults", "(e) loopstack, require_effect=False"):
        fa = len(results[title]["false_alarms"])
        targets.append((f"{title}: false alarms <= 0.05 x 37 = {limit:.2f} ({fa})", fa <= limit))
    if MODES["default"] in results:
        ratio = results[MODES["default"]]["best"] / ls_best
        text = f">= 30x faster than Evidently's default preset ({ratio:.1f}x)"
        targets.insert(0, (text, ratio >= 30))
    for text, ok in targets:
        print(f"target: {text}: {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"rows": args.rows, "seed": args.seed, "results": results},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
