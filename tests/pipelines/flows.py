"""Steps and pipelines the pipeline tests run (module level: pickled and imported by name)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import loopstack as ls

#: the steps that ran in this process, in order
CALLS: list[str] = []
FAIL_FLAG = "LS_TEST_FAIL_FLAG"


class Model:
    """A tiny model (pickled as a ``pickle`` artifact)."""

    def __init__(self, w: float, b: float) -> None:
        self.w, self.b = w, b

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.w * x + self.b


@ls.step
def load(rows: int = 10) -> pd.DataFrame:
    CALLS.append("load")
    x = np.arange(rows, dtype="float64")
    return pd.DataFrame({"x": x, "y": 2.0 * x + 1.0})


@ls.step(outputs=("train", "test"))
def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    CALLS.append("split")
    n = len(df) * 8 // 10
    return df.iloc[:n].reset_index(drop=True), df.iloc[n:].reset_index(drop=True)


@ls.step
def train(df: pd.DataFrame, lr: float = 0.1) -> Model:
    CALLS.append("train")
    w, b = np.polyfit(df["x"].to_numpy(), df["y"].to_numpy(), 1)
    return Model(round(float(w), 6) * (1 + 0 * lr), round(float(b), 6))


@ls.step
def evaluate(model: Model, df: pd.DataFrame) -> dict[str, float]:
    CALLS.append("evaluate")
    flag = os.environ.get(FAIL_FLAG)
    if flag and Path(flag).exists():
        raise RuntimeError(f"the flag file {flag} says fail")
    err = model.predict(df["x"].to_numpy()) - df["y"].to_numpy()
    return {"mae": round(float(np.abs(err).mean()), 9), "rows": float(len(df))}


@ls.pipeline
def training(rows: int = 10, lr: float = 0.1):
    df = load(rows=rows)
    train_df, test_df = split(df)
    model = train(train_df, lr=lr)
    evaluate(model, test_df)


@ls.step(cache=False)
def source(n: int = 3) -> list[int]:
    CALLS.append("source")
    return list(range(n))


@ls.step
def total(values: list[int]) -> int:
    CALLS.append("total")
    return sum(values)


@ls.pipeline(name="sums")
def summing(n: int = 3):
    total(source(n=n))


@ls.step(retries=2, backoff_s=0.01, cache=False)
def flaky(path: str, fail_times: int = 2) -> int:
    counter = Path(path)
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if seen < fail_times:
        raise RuntimeError(f"try {seen + 1} fails")
    return seen + 1


@ls.pipeline
def flaky_flow(path: str, fail_times: int = 2):
    flaky(path, fail_times=fail_times)


@ls.step(cache=False)
def interval(log: str, run: str, part: str) -> float:
    tag = f"{run}-{part}"
    start = time.time()
    time.sleep(0.05)
    end = time.time()
    with open(log, "a") as fh:
        fh.write(json.dumps([tag, start, end]) + "\n")
    return end - start


@ls.pipeline
def intervals(log: str, run: str):
    interval(log, run, part="a")
    interval(log, run, part="b")


@ls.step
def bad_kind() -> pd.DataFrame:
    return {"not": "a frame"}  # type: ignore[return-value]


@ls.pipeline
def bad_output():
    bad_kind()


def read_intervals(log: Path) -> list[Any]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@ls.step
def plus_one(v: int) -> int:
    return v + 1


@ls.pipeline
def flaky_chain(path: str):
    plus_one(flaky(path, fail_times=9))


#: both sides must arrive: only steps that run at once get through
BARRIER = threading.Barrier(2, timeout=10)


@ls.step(cache=False)
def meet(side: str) -> str:
    BARRIER.wait()
    return side


@ls.pipeline
def meeting():
    meet("left")
    meet("right")


@ls.step(name="values")
def make_values(n: int = 3) -> list[int]:
    return list(range(n))


@ls.step
def summed(values: list[int]) -> int:
    return sum(values)


etl = ls.pipelines.Pipeline.from_steps("etl", [summed, make_values])
