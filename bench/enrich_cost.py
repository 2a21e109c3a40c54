"""What feature enrichment costs a request, in process: entity keys in, features read.

Builds, in a temp ``LOOPSTACK_HOME``, a feature view of ``--features`` float features
over ``--entities`` entities plus one on-demand view (a request value times a feature;
one model reads the view's features only, another the on-demand feature too: ``+odfv``),
materializes it into the online store (SQLite, and Redis when ``--redis-url`` or
``LOOPSTACK_TEST_REDIS_URL`` names one), trains a linear model on the training set and
serves it through the runtime. Per request of 1 and 32 rows it times, median and p99
over ``--iterations`` requests:

- ``features given``: ``served.predict`` on records that carry the features already;
- ``keys only``: ``enrich`` (one batched online read, the on-demand view, assembly in
  signature order) then ``served.predict`` on what it built;
- ``enrich alone``: enrichment's own share.

Columns: ``given`` (features given), ``keys`` (keys only, p50 and p99), ``enrich``
(enrich alone), ``added`` (keys p50 minus given p50).

    python bench/enrich_cost.py [--entities 10000] [--features 10] [--iterations 2000]

Nothing is asserted; the numbers are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def scale(df: Any) -> Any:
    """The on-demand view: a request value times the first feature."""
    import pandas as pd

    return pd.DataFrame({"scaled": df["f0"] * df["factor"]})


def _timed(fn: Callable[[], Any], iterations: int) -> tuple[float, float]:
    for _ in range(min(50, iterations)):  # warm caches and plans
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99) - 1] / 1000


def build(online_url: str, entities: int, features: int, model_name: str) -> dict[str, Any]:
    """Apply, materialize, train and register; the training frame and feature names."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    import loopstack as ls
    from loopstack.features import (
        DataFrameSource,
        Entity,
        FeatureStore,
        FeatureView,
        Field,
        OnDemandFeatureView,
        RequestSource,
    )

    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    names = [f"f{k}" for k in range(features)]
    rows = pd.DataFrame({n: rng.normal(size=entities) for n in names})
    rows.insert(0, "user_id", np.arange(entities))
    rows.insert(1, "event_timestamp", now - timedelta(minutes=5))
    store = FeatureStore(online_url=online_url)
    user = Entity("user", join_keys=["user_id"])
    view = FeatureView(
        "user_stats",
        entities=[user],
        schema=[Field(n, "float64") for n in names],
        source=DataFrameSource(rows),
        ttl=timedelta(days=1),
    )
    odfv = OnDemandFeatureView(
        "scaled_view",
        sources=[view, RequestSource("req", [Field("factor", "float64")])],
        schema=[Field("scaled", "float64")],
        udf=scale,
    )
    store.apply([user, view, odfv])
    store.materialize(now - timedelta(days=1), now)
    labels = pd.DataFrame(
        {
            "user_id": np.arange(min(entities, 2000)),
            "event_timestamp": now,
            "factor": 1.5,
            "y": rng.normal(size=min(entities, 2000)),
        }
    )
    out = {}
    for odfv_too in (False, True):
        refs = [f"user_stats:{n}" for n in names] + ["scaled_view:scaled"] * odfv_too
        columns = [*names, "scaled"] if odfv_too else names
        name = f"{model_name}_odfv" if odfv_too else model_name
        with ls.start_run(experiment="enrich-bench") as run:
            train = store.get_historical_features(labels, refs, register_as=f"{name}_train")
            model = LinearRegression().fit(train[columns], train["y"])
            run.log_model(model, name=name, sample_input=train[columns].head(3))
        out[odfv_too] = (name, train, columns)
    return out


def measure(label: str, online_url: str, args: argparse.Namespace, table: list[str]) -> None:
    from loopstack.serving import EndpointSpec, EnrichmentConfig, ServingRuntime

    built = build(online_url, args.entities, args.features, f"bench_{label}")
    config = EnrichmentConfig.parse({"online_url": online_url})
    for odfv_too, (model_name, train, columns) in built.items():
        spec = EndpointSpec(label, f"models:/{model_name}/1", enrichment=config)
        runtime = ServingRuntime([spec])
        runtime.load_all()
        what = f"{label}{' +odfv' if odfv_too else ''}"
        _measure_model(what, runtime.get(label).model(), train[columns], args, table)


def _measure_model(
    what: str, served: Any, train: Any, args: argparse.Namespace, table: list[str]
) -> None:
    from loopstack.serving import enrich

    for n in (1, 32):
        keys = [{"user_id": i * 7 % args.entities, "factor": 1.5} for i in range(n)]
        given = train.head(n).to_dict("records")
        plain = _timed(lambda given=given: served.predict(given), args.iterations)

        def enriched(keys: list[dict[str, Any]] = keys) -> Any:
            result = enrich(served, keys)
            assert result is not None and result.status == "ok"
            return served.predict(result.inputs)

        full = _timed(enriched, args.iterations)
        alone = _timed(lambda keys=keys: enrich(served, keys), args.iterations)
        table.append(
            f"| {what:<12} | {n:>4} | {plain[0]:>9.0f} | {full[0]:>8.0f} | {full[1]:>8.0f} "
            f"| {alone[0]:>10.0f} | {full[0] - plain[0]:>+9.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=2_000)
    parser.add_argument("--redis-url", default=os.environ.get("LOOPSTACK_TEST_REDIS_URL"))
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="loopstack-enrich-bench-"))
    os.environ["LOOPSTACK_HOME"] = str(home)
    for var in ("LOOPSTACK_DB_URL", "LOOPSTACK_TRACKING_URI", "LOOPSTACK_ONLINE_URL"):
        os.environ.pop(var, None)
    from loopstack.serving import limit_threads

    limit_threads()
    table = [
        f"enrichment cost, {args.features} features (+odfv: and 1 on-demand), "
        f"{args.entities:,} entities, "
        f"{args.iterations:,} requests each (microseconds per request)",
        "| store        | rows | given p50 | keys p50 | keys p99 | enrich p50 | added p50 |",
        "| ------------ | ---- | --------- | -------- | -------- | ---------- | --------- |",
    ]
    measure("sqlite", f"sqlite:///{home / 'online.db'}", args, table)
    if args.redis_url:
        measure("redis", f"{args.redis_url}?prefix=lsbench-{uuid.uuid4().hex[:8]}", args, table)
    else:
        table.append("(Redis skipped: give --redis-url or set LOOPSTACK_TEST_REDIS_URL)")
    print("\n".join(table))


if __name__ == "__main__":
    main()
