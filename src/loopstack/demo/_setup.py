"""The demo's first stages: the data registered and validated, the feature views applied
and materialized, v1 trained, gated and approved, the endpoint served."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopstack.demo._common import (
    BASE_FEATURES,
    ENDPOINT,
    MODEL,
    VELOCITY,
    VELOCITY_TTL_S,
    DemoFailed,
    DemoOptions,
    DemoOutcome,
    Say,
    gate_lines,
)
from loopstack.demo._data import World, write_parquet
from loopstack.demo._pipeline import GATES, LABEL, model_columns, suite, train_model


# -- stages 1 to 4 --------------------------------------------------------------------------
@dataclass
class Setup:
    options: DemoOptions
    say: Say
    outcome: DemoOutcome = field(default_factory=DemoOutcome)
    world: World = field(init=False)
    data: Path = field(init=False)
    server: subprocess.Popen[bytes] | None = None  # the endpoint's replica
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    traffic: Any = None
    controller: Any = None
    alerts: Any = None
    history_end: pd.Timestamp = field(init=False)

    def __post_init__(self) -> None:
        self.world = World(seed=self.options.seed)
        self.data = self.options.home / "data"
        self.history_end = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)

    @property
    def stores(self) -> Any:
        from loopstack.store import open_stores

        return open_stores()

    # 1 ------------------------------------------------------------------------------------
    def register_data(self) -> None:
        import loopstack as ls

        self.say.head("data: register and validate")
        self.data.mkdir(parents=True, exist_ok=True)
        history = self.world.history(self.history_end.to_pydatetime())
        columns = ["event_timestamp", "customer_id", "merchant_id", "amount", "hour"]
        write_parquet(
            history[[*columns, "is_foreign", "age_band", LABEL]], self.data / "transactions.parquet"
        )
        end = self.history_end.to_pydatetime()
        write_parquet(self.world.customer_profiles(end), self.data / "customer_profile.parquet")
        write_parquet(self.world.merchant_stats(end), self.data / "merchant_stats.parquet")
        write_parquet(World.velocity_rows(history), self.data / "customer_velocity.parquet")
        version = ls.register_dataset("transactions", self._labels())
        report = suite().validate(version)
        report.raise_for_failures()
        frauds = int(history[LABEL].sum())
        self.say.line(
            f"{len(history):,} payments over 28 days ({frauds:,} fraud), "
            f"{len(self.world.customers):,} customers, {len(self.world.merchants)} merchants"
        )
        self.say.line(
            f"registered [bold]transactions/{version.version}[/]; "
            f"validated: {len(report.results)} checks passed"
        )

    def _labels(self) -> pd.DataFrame:
        from loopstack.demo._pipeline import LABEL_ROWS

        return pd.read_parquet(self.data / "transactions.parquet", columns=LABEL_ROWS)

    # 2 ------------------------------------------------------------------------------------
    def features(self) -> None:
        import loopstack as ls

        self.say.head("features: definitions, point in time, online")
        customer = ls.Entity("customer", join_keys=["customer_id"])
        merchant = ls.Entity("merchant", join_keys=["merchant_id"])
        views = [
            ls.FeatureView(
                "customer_profile",
                entities=[customer],
                timestamp_field="event_timestamp",
                schema=[
                    ls.Field("account_age_days", "int64"),
                    ls.Field("avg_amount_30d", "float64"),
                    ls.Field("txn_count_30d", "int64"),
                ],
                source=str(self.data / "customer_profile.parquet"),
                ttl=dt.timedelta(days=30),
            ),
            ls.FeatureView(
                "merchant_stats",
                entities=[merchant],
                timestamp_field="event_timestamp",
                schema=[
                    ls.Field("category_code", "int64"),
                    ls.Field("merchant_fraud_rate_30d", "float64"),
                    ls.Field("merchant_avg_amount", "float64"),
                ],
                source=str(self.data / "merchant_stats.parquet"),
                ttl=dt.timedelta(days=30),
            ),
            ls.FeatureView(
                "customer_velocity",
                entities=[customer],
                timestamp_field="event_timestamp",
                schema=[ls.Field("txn_count_1h", "int64")],
                source=str(self.data / "customer_velocity.parquet"),
                ttl=dt.timedelta(seconds=VELOCITY_TTL_S),
            ),
        ]
        store = ls.FeatureStore()
        store.apply([customer, merchant, *views])
        self.say.line(
            "applied 3 feature views: customer_profile, merchant_stats, customer_velocity"
        )
        start = self.history_end - pd.Timedelta(days=40)
        store.materialize(start.to_pydatetime(), dt.datetime.now(dt.UTC))
        self.say.line(f"materialized the newest values into the online store ({store.online_url})")

    # 3 ------------------------------------------------------------------------------------
    def first_model(self) -> None:
        import loopstack as ls
        from loopstack.loop import Gates, evaluate_gates, record_gates
        from loopstack.registry import SqlRegistry

        self.say.head("train v1, gate it, approve it")
        store = ls.FeatureStore()
        labels = self._labels()
        cut = len(labels) - 6000
        columns = model_columns(BASE_FEATURES)
        with ls.start_run(experiment="fraud") as run:
            train = store.get_historical_features(
                labels.iloc[:cut], BASE_FEATURES, register_as="fraud-training"
            )
            model = train_model(train, columns)
            run.log_params({"features": ",".join(columns), "rows": len(train)})
            mv = run.log_model(
                model, name=MODEL, artifact_path="model", sample_input=train[columns][:5]
            )
        holdout = store.get_historical_features(
            labels.iloc[cut:], BASE_FEATURES, register_as="fraud-evaluation"
        )
        self.say.line(
            f"HistGradientBoosting on {len(train):,} point-in-time rows; run {run.run_id[:12]}; "
            f"registered [bold]{MODEL}/{mv.version}[/] with training set fraud-training"
        )
        first = {**GATES, "primary": {"metric": "roc_auc", "min_value": 0.75, "max_regression": 1}}
        report = evaluate_gates(
            Gates.from_dict({**first, "guardrails": []}),
            f"models:/{MODEL}/{mv.version}",
            data=holdout,
            label=LABEL,
            dataset_version=ls.get_dataset("fraud-evaluation"),
            suite=suite(),
        )
        record_gates(report, MODEL, mv.version)
        for line in gate_lines(report):
            self.say.line(line)
        if not report.passed:
            raise DemoFailed(f"v1 did not pass its gates: {report.render()}")
        reg = SqlRegistry(self.stores, actor="alice")
        request = reg.request_promotion(
            MODEL, mv.version, alias="production", evidence={"gates": "passed"}
        )
        SqlRegistry(self.stores, actor="risk-lead").decide(
            request.request_id, approve=True, comment="gates passed"
        )
        aliases = SqlRegistry(self.stores).get_registered_model(MODEL).aliases
        self.say.line(
            f"alice asked to promote v{mv.version}; risk-lead approved: "
            f"production -> v{aliases.get('production')}"
        )
        self.outcome.versions[int(mv.version)] = "production at the start"

    # 4 ------------------------------------------------------------------------------------
    def serve(self) -> None:
        from loopstack.serving import SqlDeployments

        self.say.head("serve fraud-api over HTTP, features from the online store")
        deployments = SqlDeployments(self.stores, actor="alice")
        deployments.create(ENDPOINT, f"{MODEL}@production")
        defaults = {
            "customer_profile:account_age_days": 365,
            "customer_profile:avg_amount_30d": 80.0,
            "customer_profile:txn_count_30d": 16,
            "merchant_stats:category_code": 0,
            "merchant_stats:merchant_fraud_rate_30d": 0.02,
            "merchant_stats:merchant_avg_amount": 60.0,
            VELOCITY: 0,
        }
        deployments.set_enrichment(ENDPOINT, {"mode": "degraded", "defaults": defaults})
        url = f"http://127.0.0.1:{self.options.serve_port}"
        self.outcome.url = url
        with self.say.waiting("loading the model and warming it") as _:
            self.server = self.child(
                ["serve", "--deployment", ENDPOINT, "--port", str(self.options.serve_port),
                 "--refresh-s", "0.5", "--no-access-log"],
                f"{url}/v2/health/ready",
            )  # fmt: skip
        self.say.line(f"[bold]{url}/endpoints/{ENDPOINT}/predict[/] answers (OIP v2 at /v2)")
        self.say.line("a request carries customer_id, merchant_id, amount, hour, is_foreign;")
        self.say.line("the rest comes from the online store (degraded mode: defaults if stale)")

    def child(self, args: list[str], ready_url: str) -> subprocess.Popen[bytes]:
        """``loopstack ARGS`` as a child process on the demo's store, once ``ready_url``
        answers 200 (its output goes to ``<home>/<command>.log``)."""
        log = self.options.home / f"{args[0]}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "loopstack.cli", *args], env=_env(self.options.home),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.children.append(proc)
        what = f"loopstack {args[0]} ({ready_url}; its log: {log})"
        _until(lambda: _ready(ready_url, proc, what), 90, what)
        return proc


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("TRACKING_URI")}
    env["LOOPSTACK_HOME"] = str(home)
    return env


def _ready(url: str, proc: Any, what: str) -> bool:
    import httpx

    if proc.poll() is not None:
        raise DemoFailed(f"{what} exited with code {proc.returncode}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise DemoFailed(f"{what} did not come up within {timeout_s:.0f} s")
