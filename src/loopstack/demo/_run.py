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

import os
import shutil
import time
from typing import Any

from loopstack.demo._common import ENDPOINT, MODEL, DemoOptions, DemoOutcome, Say
from loopstack.demo._rounds import Demo

__all__ = ["run_demo"]


def _summary(demo: Demo, console: Any) -> None:
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
        ("loopstack server", "the web UI and the APIs on :5000"),
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
    say = Say(console)
    console.print(
        f"[bold]loopstack demo[/]: the closed loop on synthetic card payments "
        f"(seed {options.seed}; store {home})"
    )
    demo = Demo(options, say)
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
            ui = f"http://127.0.0.1:{options.port}"
            demo.child(["server", "--port", str(options.port)], f"{ui}/health")
            console.print(
                f"the web UI and the APIs: [bold]{ui}/[/]; the endpoint keeps answering at "
                f"{demo.outcome.url} with traffic flowing; Ctrl-C stops it all"
            )
            try:
                while demo.server is not None and demo.server.poll() is None:
                    demo._tick(lambda _: None)
            except KeyboardInterrupt:
                pass
    finally:
        demo.stop()
    return demo.outcome
