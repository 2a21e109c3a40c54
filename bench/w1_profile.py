"""Where a W1 run's time goes on the loopstack side (in-process, fresh LOOPSTACK_HOME).

    python bench/w1_profile.py [per-call|batch] [--runs 100] [--no-phases]

Prints ms per run for each phase (store calls, audit digest, SQLite commits and
executemany), timed by thin wrappers around loopstack internals; a name that no
longer exists is skipped. For a full sampling profile, run it under py-spy:

    py-spy record -r 1000 -o w1.svg -- python bench/w1_profile.py batch --no-phases
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from w1_tracking import METRIC_KEY, make_params, value  # noqa: E402

_acc: collections.Counter[str] = collections.Counter()
_cnt: collections.Counter[str] = collections.Counter()


def _wrap(obj: Any, name: str, label: str) -> None:
    f = getattr(obj, name, None)
    if f is None:
        print(f"(skipped {label}: {obj.__name__}.{name} does not exist)")
        return

    @functools.wraps(f)
    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            _acc[label] += time.perf_counter() - t
            _cnt[label] += 1

    setattr(obj, name, timed)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="batch", choices=["per-call", "batch"])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--params", type=int, default=20)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--no-capture-env", action="store_true")
    p.add_argument("--no-phases", action="store_true", help="no wrappers (for py-spy)")
    a = p.parse_args()
    home = tempfile.mkdtemp(prefix="w1-profile-")
    os.environ["LOOPSTACK_HOME"] = home
    os.chdir(home)

    import loopstack as ls
    from loopstack.store import audit, open_stores
    from loopstack.tracking import Metric, _client, _fluent, _sql_store
    from loopstack.tracking._entities import now_ms

    open_stores()
    cap = not a.no_capture_env
    with ls.start_run(experiment="warmup", params={"x": 1}, capture_env=cap):
        ls.log_metric("warm", 1.0, step=0)
    ls.set_experiment("w1")
    if not a.no_phases:
        import sqlalchemy.engine.default as sa_default

        store = _sql_store.SqlTrackingStore
        for name in (
            "create_run",
            "log_batch",
            "update_run",
            "get_run",
            "get_experiment",
            "get_experiment_by_name",
        ):
            _wrap(store, name, f"SqlTrackingStore.{name}")
        _wrap(_client.TrackingClient, "__init__", "TrackingClient() (settings, per start_run)")
        _wrap(_fluent, "environment_tags", "environment_tags (capture_env)")
        _wrap(audit, "digest_of", "audit.digest_of (payload hash)")
        _wrap(sa_default.DefaultDialect, "do_commit", "sqlite COMMIT (fsync)")
        _wrap(sa_default.DefaultDialect, "do_executemany", "sqlite executemany")
        _wrap(sa_default.DefaultDialect, "do_execute", "sqlite execute")

    params = [make_params(r, a.params) for r in range(a.runs)]
    t0, c0 = time.perf_counter(), time.process_time()
    for r in range(a.runs):
        if a.mode == "batch":
            with ls.start_run(experiment="w1", run_name=f"run-{r}", capture_env=cap) as run:
                ts = now_ms()
                run.client.log_batch(
                    run.run_id,
                    params=params[r],
                    metrics=[Metric(METRIC_KEY, value(r, i), i, ts) for i in range(a.points)],
                )
        else:
            with ls.start_run(
                experiment="w1", run_name=f"run-{r}", params=params[r], capture_env=cap
            ):
                for i in range(a.points):
                    ls.log_metric(METRIC_KEY, value(r, i), step=i)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = a.runs * a.points
    print(
        f"loopstack {a.mode}: {a.runs} runs x {a.params} params x {a.points} points: "
        f"{wall:.2f} s wall, {cpu:.2f} s CPU, {n / wall:,.0f} points/s, "
        f"{wall / a.runs * 1e3:.1f} ms/run"
    )
    for label, secs in sorted(_acc.items(), key=lambda kv: -kv[1]):
        print(
            f"  {label:48s} {secs / a.runs * 1e3:7.2f} ms/run  {100 * secs / wall:5.1f}%  "
            f"calls/run {_cnt[label] / a.runs:g}"
        )
    if _acc:
        print("  (phases nest: a store call includes the commits, executemany and digest in it)")


if __name__ == "__main__":
    main()
