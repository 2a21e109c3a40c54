"""``loopstack demo``: the whole loop, stage by stage, on the demo's synthetic world.

1. data: 28 days of card payments registered as a dataset version and validated;
2. features: three feature views (customer profiles, merchant numbers, the velocity
   stream) applied, a point-in-time training set built, the online store materialized;
3. v1 trained and tracked, registered with its training set, gated, approved by a
   second person, ``production``;
4. ``loopstack serve`` (a child process) answers ``fraud-api`` over HTTP with the
   features from the online store;
5. payments flow, their labels come back two seconds later; alert rules watch drift
   and performance; midway the world drifts;
6. the drift trigger fires the retraining pipeline (``loopstack.demo._pipeline``): v2
   is trained on the warehouse's fresh labels, gated against v1, approved, canaried
   25% -> 50% -> 100% under guardrails that include its live recall, promoted;
7. round two: a challenger that also reads the velocity stream passes its offline
   gates by far, but the stream job stops before its canary; online its velocities
   are stale, the endpoint serves it defaults, its live recall collapses, and the
   rollout rolls it back by itself;
8. a summary and where to look.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loopstack.demo._data import World, write_parquet
from loopstack.demo._pipeline import GATES, LABEL, model_columns, suite, train_model

__all__ = ["DemoOptions", "DemoOutcome", "run_demo"]

ENDPOINT = "fraud-api"
MODEL = "fraud"
BASE_FEATURES = [
    "customer_profile:account_age_days",
    "customer_profile:avg_amount_30d",
    "customer_profile:txn_count_30d",
    "merchant_stats:category_code",
    "merchant_stats:merchant_fraud_rate_30d",
    "merchant_stats:merchant_avg_amount",
]
VELOCITY = "customer_velocity:txn_count_1h"
WINDOW_S = 30  # the drift trigger's and the alert rules' window
VELOCITY_TTL_S = 15
PIPELINE = "loopstack.demo._pipeline:retraining"
TERMINAL = ("promoted", "rolled_back", "failed", "cancelled")


@dataclass
class DemoOptions:
    """How ``loopstack demo`` runs (the CLI's flags)."""

    home: Path
    seed: int = 0
    serve_port: int = 8081
    keep_running: bool = False
    #: seconds of clean traffic at least before the drift (which starts on the next
    #: boundary of the trigger's window)
    calm_s: float = 10.0
    #: the longest the demo waits for any one stage before it gives up
    stage_timeout_s: float = 150.0


@dataclass
class DemoOutcome:
    """What happened, for the summary (and the tests)."""

    url: str = ""
    versions: dict[int, str] = field(default_factory=dict)  # version -> what became of it
    rollouts: dict[int, str] = field(default_factory=dict)  # rollout id -> final status
    alerts: list[str] = field(default_factory=list)
    firings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


class DemoFailed(Exception):
    """A stage of the demo did not happen as the story needs (with what was seen)."""


# -- output ---------------------------------------------------------------------------------
class _Say:
    def __init__(self, console: Any) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.stage = 0

    def clock(self) -> str:
        return f"[dim]{time.monotonic() - self.t0:6.1f}s[/]"

    def head(self, title: str) -> None:
        self.stage += 1
        self.console.print(f"\n{self.clock()} [bold cyan]{self.stage}. {title}[/]")

    def line(self, text: str) -> None:
        self.console.print(f"{self.clock()}   {text}")

    @contextmanager
    def waiting(self, what: str) -> Iterator[Callable[[str], None]]:
        with self.console.status(what) as status:
            yield lambda text: status.update(f"{what} [dim]{text}[/]")


# -- the stages -----------------------------------------------------------------------------
@dataclass
class _Demo:
    options: DemoOptions
    say: _Say
    outcome: DemoOutcome = field(default_factory=DemoOutcome)
    world: World = field(init=False)
    data: Path = field(init=False)
    server: subprocess.Popen[bytes] | None = None
    traffic: Any = None
    controller: Any = None
    alerts: Any = None
    history_end: pd.Timestamp = field(init=False)
    seen_alerts: set[str] = field(default_factory=set)

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
        from loopstack.demo._pipeline import _LABEL_ROWS

        return pd.read_parquet(self.data / "transactions.parquet", columns=_LABEL_ROWS)

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
        for line in _gate_lines(report):
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
        port = self.options.serve_port
        log = self.options.home / "serve.log"
        command = [
            sys.executable, "-m", "loopstack.cli", "serve", "--deployment", ENDPOINT,
            "--port", str(port), "--refresh-s", "0.5", "--no-access-log",
        ]  # fmt: skip
        with open(log, "ab") as out:
            self.server = subprocess.Popen(
                command, env=_env(self.options.home), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.outcome.url = url
        with self.say.waiting("loading the model and warming it") as _:
            _until(lambda: _ready(url, self.server), 90, f"the endpoint at {url} (log: {log})")
        self.say.line(f"[bold]{url}/endpoints/{ENDPOINT}/predict[/] answers (OIP v2 at /v2)")
        self.say.line("a request carries customer_id, merchant_id, amount, hour, is_foreign;")
        self.say.line("the rest comes from the online store (degraded mode: defaults if stale)")

    # 5 ------------------------------------------------------------------------------------
    def watch(self) -> None:
        import loopstack as ls
        from loopstack.demo._traffic import Traffic
        from loopstack.loop import Controller, Trigger, TriggerStore
        from loopstack.monitoring import AlertRule, AlertStore

        self.say.head("traffic, monitoring, and the triggers")
        store = ls.FeatureStore()
        self.traffic = Traffic(
            self.world,
            self.outcome.url,
            ENDPOINT,
            self.data / "transactions.parquet",
            self.data / "customer_velocity.parquet",
            push=lambda rows: store.push("customer_velocity", rows),
        )
        self.alerts = AlertStore(self.stores)
        rules = [
            AlertRule("inputs-drift", "drift_share", ">=", 0.3, severity="warning",
                      category="model_quality", labels={"endpoint": ENDPOINT}),
            AlertRule("auc-low", "roc_auc", "<", 0.75, severity="critical",
                      category="model_quality", for_windows=2, labels={"endpoint": ENDPOINT}),
        ]  # fmt: skip
        for rule in rules:
            self.alerts.save_rule(rule)
        self.say.line(
            "alert rules: inputs-drift (drift_share >= 0.3), auc-low (roc_auc < 0.75, "
            "2 windows in a row); alerts go to the log and the metadata DB"
        )
        triggers = TriggerStore(self.stores)
        triggers.add(
            Trigger(
                "fraud-drift", "drift", PIPELINE,
                params=self._params(BASE_FEATURES),
                spec={"endpoint": ENDPOINT, "above": 0.3, "window": WINDOW_S},
            )
        )  # fmt: skip
        self.say.line(
            f"trigger fraud-drift: drift_share > 0.3 over {WINDOW_S} s windows runs {PIPELINE}"
        )
        self.controller = Controller(self.stores, holder="demo", interval_s=0.5)
        self.traffic.start()
        self.say.line(
            f"payments: {self.traffic.rate:g} requests/s of {self.traffic.batch}; "
            f"labels come back {self.traffic.label_delay_s:g} s later"
        )
        began = time.monotonic()
        # the drift starts on a window's boundary, so the trigger's first drifted window
        # holds a whole window of the new world (enough labelled rows to learn it from)
        boundary = (time.time() + self.options.calm_s) // WINDOW_S * WINDOW_S + WINDOW_S
        with self.say.waiting("calm traffic") as status:
            while time.time() < boundary:
                self._tick(status)
        calm = time.monotonic() - began
        self.traffic.drifted = True
        sent = sum(self.traffic.counts.requests.values())
        self.say.line(
            f"{sent:,} requests in {calm:.0f} s ({sent / calm:.1f}/s), "
            f"{self.traffic.counts.labelled:,} payments labelled"
        )
        self.say.line(
            "[bold yellow]the world drifts:[/] prices x1.5, more payments abroad, and a fraud "
            "ring on domestic electronics and gaming"
        )

    def _params(self, features: list[str]) -> dict[str, Any]:
        return {
            "warehouse": str(self.data / "transactions.parquet"),
            "features": features,
            "model": MODEL,
            "endpoint": ENDPOINT,
            "recent_after": self.history_end.isoformat(),
            "holdout": 0.35,
            "plan": {
                "steps": [
                    {"weight": 0.25, "bake_s": 8},
                    {"weight": 0.5, "bake_s": 8},
                    {"weight": 1.0, "bake_s": 0},
                ],
                "guardrails": [
                    {"metric": "error_rate", "op": "<=", "threshold": 0.02},
                    {"metric": "latency_p99_ms", "op": "<", "threshold": 2000},
                    {"metric": "recall", "op": ">=", "threshold": 0.5},
                ],
                "interval_s": 2,
                "window_s": 10,
                "min_requests": 15,
                "breaches_to_rollback": 2,
                "metrics_url": f"{self.outcome.url}/metrics",
            },
        }

    last_monitor: float = 0.0

    def _tick(self, status: Callable[[str], None]) -> list[Any]:
        """One turn: the controller's step, the alert rules every 5 s, the traffic line."""
        from loopstack.monitoring._monitor import monitor_once

        report = self.controller.step()
        for event in report.events:
            self.say.line(f"[magenta]loop[/] {event.kind}: {event.trigger} {event.message}")
            if event.kind == "fired":
                self.outcome.firings.append(f"{event.trigger}: {event.message}")
        if time.monotonic() - self.last_monitor >= 5:
            self.last_monitor = time.monotonic()
            for _, events in monitor_once(self.alerts, [ENDPOINT], window=f"{WINDOW_S}s"):
                for e in events:
                    if e.kind not in ("fired", "resolved"):
                        continue
                    rule = e.rule
                    text = (
                        f"alert {e.kind}: {rule.name} ({rule.metric} = {e.value:.3g}, "
                        f"{rule.comparison} {rule.threshold:g} breaks it)"
                    )
                    self.outcome.alerts.append(text)
                    self.say.line(f"[red]{text}[/]" if e.kind == "fired" else text)
        counts = self.traffic.counts
        served = ", ".join(f"v{v}: {n}" for v, n in sorted(counts.requests.items()))
        status(f"requests {served}; labelled {counts.labelled:,}")
        if self.traffic.errors:
            raise DemoFailed(f"the traffic failed: {self.traffic.errors[-1]}")
        time.sleep(0.25)
        return list(report.events)

    # 6 and 7 ----------------------------------------------------------------------------
    def _wait_for_rollout(self, after: int) -> Any:
        """Tick until the controller's pipeline started a rollout newer than ``after``."""
        from loopstack.loop import Rollouts

        deadline = time.monotonic() + self.options.stage_timeout_s
        with self.say.waiting("waiting for the loop") as status:
            while time.monotonic() < deadline:
                events = self._tick(status)
                stopped = [e for e in events if e.kind in ("stopped", "failed", "error")]
                if stopped:
                    raise DemoFailed(f"the loop stopped: {stopped[0].message}")
                found = [r for r in Rollouts(self.stores).list(endpoint=ENDPOINT)]
                found = [r for r in found if r.rollout_id > after]
                if found:
                    return found[0]
        raise DemoFailed(
            f"no rollout began within {self.options.stage_timeout_s:.0f} s; "
            f"the loop saw: {self.outcome.firings or 'nothing'}"
        )

    def _gates_of(self, version: int) -> None:
        from loopstack.loop import gate_report

        report = gate_report(MODEL, version)
        if report is not None:
            for line in _gate_lines(report):
                self.say.line(line)

    def _drive(self, rollout: Any, approve_when: Callable[[], bool] | None = None) -> Any:
        """Approve ``rollout`` as risk-lead (once ``approve_when`` holds), then tick until
        it ends; the final rollout."""
        from loopstack.loop import Rollouts

        deadline = time.monotonic() + self.options.stage_timeout_s
        approved = False
        with self.say.waiting(f"rollout #{rollout.rollout_id}") as status:
            while time.monotonic() < deadline:
                now = Rollouts(self.stores).get(rollout.rollout_id)
                if now.status in TERMINAL:
                    return now
                ready = approve_when is None or approve_when()
                if not approved and now.status == "awaiting_approval" and ready:
                    Rollouts(self.stores, actor="risk-lead").approve(
                        rollout.rollout_id, comment="gates passed; canary it"
                    )
                    self.say.line(
                        f"risk-lead approved v{now.version} for production (rollout "
                        f"#{now.rollout_id}); the canary starts"
                    )
                    approved = True
                self._tick(status)
        raise DemoFailed(f"rollout #{rollout.rollout_id} did not finish in time")

    def round_one(self) -> None:
        from loopstack.loop import TriggerStore

        self.say.head("drift -> alerts -> retraining -> gates -> canary -> promotion")
        rollout = self._wait_for_rollout(0)
        TriggerStore(self.stores).disable("fraud-drift")
        self.say.line(
            "(the demo turns fraud-drift off now: v2's reference still holds the old world, "
            "so it would fire on every window)"
        )
        self.say.line(f"v{rollout.version} registered by the pipeline; its gates:")
        self._gates_of(int(rollout.version))
        done = self._drive(rollout)
        self._ended(done)
        if done.status != "promoted":
            raise DemoFailed(f"v{done.version} was not promoted: {done.status} ({done.reason})")
        self.first_rollout = done.rollout_id

    first_rollout: int = 0

    def round_two(self) -> None:
        from loopstack.loop import Trigger, TriggerStore

        self.say.head("a challenger that passes offline and fails live")
        triggers = TriggerStore(self.stores)
        triggers.add(
            Trigger("velocity-challenger", "manual", PIPELINE,
                    params=self._params([*BASE_FEATURES, VELOCITY]))
        )  # fmt: skip
        triggers.fire_manual("velocity-challenger", "a data scientist adds the velocity stream")
        self.say.line(
            "a data scientist fires velocity-challenger: the same pipeline, plus "
            f"{VELOCITY} (the stream job's last-hour count per card)"
        )
        rollout = self._wait_for_rollout(self.first_rollout)
        self.say.line(f"v{rollout.version}'s gates (offline, point in time):")
        self._gates_of(int(rollout.version))
        self.traffic.velocity_job = False
        stopped = time.monotonic()
        self.say.line(
            "[bold yellow]the velocity stream job stops[/] (its consumer lost the broker); "
            f"nobody notices: its values go stale after {VELOCITY_TTL_S} s"
        )
        done = self._drive(
            rollout, approve_when=lambda: time.monotonic() - stopped > VELOCITY_TTL_S + 1
        )
        self._ended(done)
        if done.status != "rolled_back":
            raise DemoFailed(f"v{done.version} was not rolled back: {done.status}")

    def _ended(self, rollout: Any) -> None:
        from loopstack.registry import SqlRegistry

        counts = self.traffic.counts
        v = str(rollout.version)
        recall = counts.caught[v] / counts.frauds[v] if counts.frauds[v] else float("nan")
        production = SqlRegistry(self.stores).get_registered_model(MODEL).aliases.get("production")
        colour = "green" if rollout.status == "promoted" else "red"
        self.say.line(
            f"[bold {colour}]rollout #{rollout.rollout_id} {rollout.status}[/]: "
            f"{rollout.reason or ''}"
        )
        self.say.line(
            f"v{v} answered {counts.requests[v]:,} requests ({counts.degraded[v]:,} degraded), "
            f"caught {counts.caught[v]}/{counts.frauds[v]} frauds (recall {recall:.2f}); "
            f"production is v{production}"
        )
        self.outcome.rollouts[int(rollout.rollout_id)] = rollout.status
        self.outcome.versions[int(rollout.version)] = rollout.status

    # 8 ------------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _gate_lines(report: Any) -> list[str]:
    out = []
    for r in report.results:
        mark = "[green]passed[/]" if r.passed else "[red]failed[/]"
        out.append(f"  gate {r.gate}: {mark} - {r.reason}")
    return out


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("TRACKING_URI")}
    env["LOOPSTACK_HOME"] = str(home)
    return env


def _ready(url: str, proc: Any) -> bool:
    import httpx

    if proc.poll() is not None:
        raise DemoFailed(f"loopstack serve exited with code {proc.returncode}")
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise DemoFailed(f"{what} did not come up within {timeout_s:.0f} s")


def _summary(demo: _Demo, console: Any) -> None:
    from rich.table import Table

    out = demo.outcome
    table = Table(title="what happened", title_justify="left")
    table.add_column("model version")
    table.add_column("what became of it")
    for version, what in sorted(out.versions.items()):
        table.add_row(f"{MODEL}/{version}", what)
    console.print()
    console.print(table)
    home = demo.options.home
    console.print(f"\n[bold]Where to look[/] (the demo's store is {home}):")
    last = max(out.rollouts, default=1)
    lines = [
        (f"export LOOPSTACK_HOME={home}", ""),
        ("loopstack runs list --experiment fraud-retraining", "the training runs"),
        (f"loopstack models show {MODEL}", "versions, aliases, approvals"),
        ("loopstack data show transactions", "dataset versions, profiles"),
        ("loopstack features list", "the feature views"),
        ("loopstack pipelines list", "each retraining, step by step"),
        ("loopstack loop status", "what fired, why, what it led to"),
        (f"loopstack rollout list --endpoint {ENDPOINT}", "the canaries"),
        (f"loopstack rollout status {last}", "guardrails, breaches, trail"),
        ("loopstack monitor alerts", "the alerts that fired"),
        (f"loopstack monitor report {ENDPOINT} --window 1h --model-version {MODEL}/1", ""),
        ("loopstack audit verify", "every change, hash-chained"),
        (f"loopstack serve --deployment {ENDPOINT} --port {demo.options.serve_port}", ""),
        ("loopstack server", "the server and MLflow API, :5000"),
    ]
    for command, why in lines:
        console.print(f"  {command:<50} [dim]{why}[/]" if why else f"  {command}", highlight=False)


def run_demo(options: DemoOptions, console: Any) -> DemoOutcome:
    """Run the whole story in ``options.home`` (wiped first), printing each stage."""
    home = options.home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    os.environ["LOOPSTACK_HOME"] = str(home)
    for name in [k for k in os.environ if k.endswith("TRACKING_URI")]:
        del os.environ[name]
    say = _Say(console)
    console.print(
        f"[bold]loopstack demo[/]: the closed loop on synthetic card payments "
        f"(seed {options.seed}; store {home})"
    )
    demo = _Demo(options, say)
    try:
        demo.register_data()
        demo.features()
        demo.first_model()
        demo.serve()
        demo.watch()
        demo.round_one()
        demo.round_two()
        demo.outcome.elapsed_s = time.monotonic() - say.t0
        _summary(demo, console)
        console.print(f"\nthe demo took {demo.outcome.elapsed_s:.0f} s")
        if options.keep_running:
            console.print(
                f"the endpoint keeps answering at {demo.outcome.url} with traffic flowing; "
                "Ctrl-C stops it"
            )
            try:
                while demo.server is not None and demo.server.poll() is None:
                    demo._tick(lambda _: None)
            except KeyboardInterrupt:
                pass
    finally:
        demo.stop()
    return demo.outcome
