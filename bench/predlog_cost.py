"""What the serving hot path pays for the prediction log (and the batcher).

Measures, over a fresh SQLite database and local artifact directory in a temp dir:

- ``PredictionLog.record`` in ns per call, one thread and 8 threads at once, with a
  realistic row (10 input features, 10 enriched features, a float output): first
  with no flush during the run (the request path's own cost), then with the
  background thread flushing for real every ``--flush-interval`` seconds (it
  serializes in Python, so it competes with the recording threads for the GIL);
- how long ``close()`` takes to write what is left, i.e. the writer's rows/s;
- the batcher's per-item overhead: ``--items`` concurrent submits of a no-op
  ``predict_fn`` (batches of 32), in microseconds per item.

    python bench/predlog_cost.py [--records 200000] [--flush-interval 1.0] [--items 20000]

Nothing is asserted; the numbers are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from loopstack.serving import Batcher, PredictionLog
from loopstack.store import Stores
from loopstack.store.artifacts import ArtifactStore, open_blob_store
from loopstack.store.events import EventLog
from loopstack.store.metadata import Database


def _record_loop(plog: PredictionLog, n: int, tag: str) -> None:
    inputs = {f"x{k}": k * 0.5 for k in range(10)}
    features = {f"f{k}": k for k in range(10)}
    record = plog.record
    for i in range(n):
        record(
            f"{tag}-{i}",
            "churn",
            "churn/3",
            0.73,
            inputs=inputs,
            features=features,
            arm="a",
            latency_ms=1.2,
        )


def bench_record(root: Path, records: int, interval: float, threads: int) -> None:
    db = Database(f"sqlite:///{root / f'bench-{threads}-{interval}.db'}")
    events = EventLog(Stores(db, ArtifactStore(db, open_blob_store(str(root / "blobs")))))
    plog = PredictionLog(events, flush_interval_s=interval, max_buffer=10_000_000)
    per_thread = records // threads
    workers = [
        threading.Thread(target=_record_loop, args=(plog, per_thread, f"t{t}"))
        for t in range(threads)
    ]
    started = time.perf_counter_ns()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter_ns() - started
    total = per_thread * threads
    flushed_during = plog.stats.flushed
    t0 = time.perf_counter()
    plog.close()
    closing = time.perf_counter() - t0
    rows = plog.read_predictions().num_rows
    left = total - flushed_during
    print(
        f"record() x{total:,}, {threads} thread(s), flush every {interval:g} s: "
        f"{elapsed / total:,.0f} ns per record (wall time / records); "
        f"flushed meanwhile: {flushed_during:,}; close() wrote the other {left:,} in "
        f"{closing:.2f} s ({left / closing:,.0f} rows/s); stored: {rows:,}; "
        f"dropped: {plog.stats.dropped}"
    )
    db.dispose()


def bench_batcher(items: int) -> None:
    async def main() -> float:
        batcher: Batcher[int, int] = Batcher(
            lambda xs: xs, max_batch_size=32, max_latency_ms=2, max_queue=items
        )
        t0 = time.perf_counter_ns()
        await asyncio.gather(*(batcher.submit(i) for i in range(items)))
        took = time.perf_counter_ns() - t0
        await batcher.close()
        print(f"batcher: {items:,} submits in {batcher.stats.batches:,} batches")
        return took / items

    print(f"batcher overhead: {asyncio.run(main()) / 1000:.1f} us per item (no-op predict_fn)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--items", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ls-predlog-bench-") as tmp:
        # the request path's own cost (nothing flushes while recording), then the same
        # with the flush thread running, and so competing for the interpreter lock
        for interval in (3600.0, args.flush_interval):
            for threads in (1, 8):
                bench_record(Path(tmp), args.records, interval, threads)
    bench_batcher(args.items)


if __name__ == "__main__":
    main()
