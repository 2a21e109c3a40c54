"""W6, stream row: a producer XADDs events at a steady rate into a Redis Stream;
``StreamScorer`` scores them with a stored deployment (HistGradientBoosting on 30 float
features, as W6's batch row) into the prediction log. Reports events/s and the
end-to-end lag (event id time -> prediction durable and acknowledged), p50/p99.

    python bench/w6_stream.py [--rate 1000] [--seconds 20] [--batch 100]
        [--redis redis://127.0.0.1:6379/0]

Runs in a temporary LOOPSTACK_HOME (SQLite metadata, local artifacts); the producer is
a separate process, so it does not share the scorer's interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

N_FEATURES = 30


def produce(url: str, stream: str, rate: float, seconds: float) -> None:
    """XADD ``rate`` events a second for ``seconds``, paced every 10 ms."""
    import numpy as np
    import redis

    client = redis.Redis.from_url(url)
    rng = np.random.default_rng(1)
    cols = [f"f{i:02d}" for i in range(N_FEATURES)]
    start, sent = time.monotonic(), 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate))
        if due > sent:
            pipe = client.pipeline(transaction=False)
            for row in rng.normal(size=(due - sent, N_FEATURES)).astype("float32"):
                pipe.xadd(stream, {"data": json.dumps(dict(zip(cols, row.tolist(), strict=True)))})
            pipe.execute()
            sent = due
        time.sleep(0.01)


class _Lags:
    """Stands in for the lag histogram child: keeps every observation."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.values = inner, []

    def observe(self, value: float) -> None:
        self.values.append(value)
        self.inner.observe(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--redis", default=os.environ.get("LOOPSTACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="w6-stream-")
    os.environ["LOOPSTACK_HOME"] = home

    import numpy as np
    import pandas as pd
    import redis
    from sklearn.ensemble import HistGradientBoostingClassifier

    import loopstack as ls
    from loopstack.serving import deployments, limit_threads
    from loopstack.serving.stream import RedisStreamSource, StreamScorer

    limit_threads()
    rng = np.random.default_rng(0)
    cols = [f"f{i:02d}" for i in range(N_FEATURES)]
    X = pd.DataFrame(rng.normal(size=(20_000, N_FEATURES)).astype("float32"), columns=cols)
    y = (X["f00"] + X["f01"] * X["f02"] > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100).fit(X, y)
    with ls.start_run(experiment="w6-stream") as run:
        run.log_model(model, name="w6", artifact_path="m", sample_input=X.head(5))
    deployments().create("w6-stream", "w6/1")

    stream = f"w6-stream-{uuid.uuid4().hex[:8]}"
    source = RedisStreamSource(f"{args.redis}?stream={stream}", "bench", "c1")
    scorer = StreamScorer("w6-stream", source, batch=args.batch)
    scorer.open()
    lags = _Lags(scorer.metrics.lag)
    scorer.metrics.lag = lags  # type: ignore[assignment]
    producer = mp.get_context("spawn").Process(
        target=produce, args=(args.redis, stream, args.rate, args.seconds)
    )
    started = time.monotonic()
    producer.start()
    try:
        stats = scorer.run(idle_exit_s=2.0)
    finally:
        producer.join()
        client = redis.Redis.from_url(args.redis)
        for key in client.scan_iter(f"{stream}*"):
            client.delete(key)
    elapsed = time.monotonic() - started - 2.0  # the idle wait at the end
    values = sorted(lags.values)
    p50 = statistics.median(values) * 1000
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))] * 1000
    print(f"W6 stream: {stats.scored:,} events, HistGradientBoosting x {N_FEATURES} features")
    print(
        f"{'offered ev/s':>13} {'scored ev/s':>12} {'batches':>8} "
        f"{'p50 lag ms':>11} {'p99 lag ms':>11}"
    )
    print(
        f"{args.rate:>13,.0f} {stats.scored / elapsed:>12,.0f} {stats.batches:>8,} "
        f"{p50:>11,.1f} {p99:>11,.1f}"
    )


if __name__ == "__main__":
    main()
