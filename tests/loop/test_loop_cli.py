"""`loopstack loop`: add triggers, list them, fire one, run the controller, see what
fired and why; bad input is one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

import loopstack as ls
from loopstack.cli import app

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, width: int = 80) -> tuple[int, str, str]:
    got = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    return got.exit_code, got.stdout, got.stderr


def test_round_trip_add_list_fire_run_status(use_db: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.py"
    ran = tmp_path / "ran.txt"
    jobs.write_text(
        "import loopstack as ls\n\n"
        "@ls.step(cache=False)\n"
        "def note(rows: int, name: str) -> int:\n"
        f"    open({str(ran)!r}, 'a').write(repr([('name', name), ('rows', rows)]) + '\\n')\n"
        "    return rows\n\n"
        "@ls.pipeline\n"
        "def training(rows: int = 0, name: str = ''):\n"
        "    note(rows=rows, name=name)\n"
    )
    entry = f"{jobs}:training"
    code, out, err = cli(
        "loop", "triggers", "add", "fresh", "--kind", "dataset", "--pipeline", entry,
        "--dataset", "transactions", "--param", "rows=10", "--param", "name=x",
    )  # fmt: skip
    assert code == 0, err
    assert "added trigger 'fresh' (new version of transactions)" in out
    code, out, err = cli(
        "loop", "triggers", "add", "nightly", "--kind", "cron", "--pipeline", entry,
        "--schedule", "0 2 * * *",
    )  # fmt: skip
    assert code == 0, err
    missing = f"{tmp_path}/nope.py:training"
    code, out, err = cli("loop", "triggers", "add", "bad", "--kind", "cron",
                         "--pipeline", missing, "--schedule", "* * * * *")  # fmt: skip
    assert code == 1 and err.startswith("error: the pipeline") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = cli("loop", "triggers", "add", "x", "--kind", "cron", "--pipeline", entry,
                         "--schedule", "61 * * * *")  # fmt: skip
    assert code == 1 and "minute must be from 0 to 59; got 61" in err
    listed = json.loads(cli("loop", "triggers", "--json")[1])
    assert [(t["name"], t["kind"], t["enabled"]) for t in listed] == [
        ("fresh", "dataset", True),
        ("nightly", "cron", True),
    ]
    assert listed[0]["params"] == {"rows": 10, "name": "x"}
    assert cli("loop", "triggers", "disable", "nightly")[0] == 0
    assert "no" in cli("loop", "triggers")[1]
    code, out, err = cli("loop", "triggers", "fire", "fresh", "--reason", "labels arrived")
    assert code == 0 and "firing #1 is pending" in out, err
    ls.register_dataset("transactions", pd.DataFrame({"a": [1]}))
    # the real controller process, as an operator runs it: the pipeline runs for real
    script = tmp_path / "controller.py"
    script.write_text(
        "import sys\n"
        "from loopstack.cli import main\n"
        "sys.argv = ['loopstack', 'loop', 'run', '--interval', '0.01', '--iterations', '2']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env["COLUMNS"] = "100"
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fired    #2 fresh: dataset 'transactions' version 1 registered" in done.stdout
    assert "launched #1 fresh" in done.stdout and "done     #2 fresh" in done.stdout
    assert ran.read_text().splitlines() == ["[('name', 'x'), ('rows', 10)]"] * 2
    runs = ls.pipelines.list_runs("training")
    assert [r.status for r in runs] == ["FINISHED", "FINISHED"]
    code, out, err = cli("loop", "status")
    assert code == 0, err
    assert all(len(line) <= 80 for line in out.splitlines()), out
    shown = json.loads(cli("loop", "status", "--json")[1])
    assert [(f["trigger"], f["status"], f["reason"]) for f in shown] == [
        ("fresh", "done", "dataset 'transactions' version 1 registered"),
        ("fresh", "done", "labels arrived"),
    ]
    only = json.loads(cli("loop", "status", "--trigger", "nightly", "--json")[1])
    assert only == []
    assert cli("loop", "triggers", "remove", "fresh")[0] == 0
    assert json.loads(cli("loop", "status", "--json")[1]) == []
    code, _, err = cli("loop", "triggers", "fire", "fresh")
    assert code == 1 and err.strip() == "error: no trigger named 'fresh' in this project"


def test_two_cli_controllers_one_stands_by(use_db: str) -> None:
    code, out, err = cli("loop", "run", "--once")
    assert code == 0 and "controller " in out, err
    from loopstack.store import open_stores
    from loopstack.store.metadata import acquire_lease

    acquire_lease(open_stores().db, "loop-controller", "someone-else", ttl_s=60)
    code, out, err = cli("loop", "run", "--once")
    assert code == 0 and "standby: another controller holds the lease" in out, err


def test_sigterm_stops_the_controller_and_gives_the_lease_up(use_db: str) -> None:
    import signal
    import time

    from loopstack.store import open_stores
    from loopstack.store.metadata import lease_holder

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopstack.cli", "loop", "run", "--interval", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while lease_holder(open_stores().db, "loop-controller") is None:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()
    assert lease_holder(open_stores().db, "loop-controller") is None


def test_cooldown_added_listed_refused_when_bad_and_held_evaluations_shown(
    use_db: str, tmp_path: Path
) -> None:
    import time

    from loopstack.loop import Controller
    from loopstack.store import open_stores
    from tests.loop._launch import FakeObserve, Launcher, pipeline_file

    entry = pipeline_file(tmp_path)
    drift = ("--kind", "drift", "--pipeline", entry, "--endpoint", "fraud", "--above", "0.3")
    code, out, err = cli("loop", "triggers", "add", "fraud-drift", *drift, "--cooldown", "3h")
    assert code == 0, err
    assert "(drift_share > 0.3 on fraud over 1h, cooldown 3h)" in out
    code, _, err = cli("loop", "triggers", "add", "x", *drift, "--cooldown", "soon")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "error: a drift trigger's 'cooldown' must be positive seconds" in err and "'soon'" in err
    code, _, err = cli("loop", "triggers", "add", "y", "--kind", "cron", "--pipeline", entry,
                       "--schedule", "* * * * *", "--cooldown", "1h")  # fmt: skip
    assert code == 1 and "takes schedule; got 'cooldown'" in err
    listed = json.loads(cli("loop", "triggers", "--json")[1])
    assert [(t["name"], t["spec"]["cooldown"]) for t in listed] == [("fraud-drift", "3h")]
    seen = FakeObserve({"drift_share": 0.45})
    c = Controller(open_stores(), launch=Launcher(), observe=seen, rollouts=False)
    t0 = (time.time() // 3600 + 1) * 3600
    c.step(t0 + 60)
    assert [e.kind for e in c.step(t0 + 3600 + 5).events] == ["held"]
    code, out, err = cli("loop", "status")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("fraud-drift: ")]
    assert len(lines) == 1, out
    assert "drift_share 0.45 > 0.30 on fraud over 1h but cooling down until" in lines[0]
    assert "(held back at " in lines[0]
