"""`loopstack quickstart`: a server on the embedded store, a demo run logged to it over HTTP."""

from __future__ import annotations

import typer

HEALTH_TIMEOUT_S = 60.0


def _log_tail(path: object, lines: int = 5) -> str:
    from pathlib import Path

    try:
        text = Path(str(path)).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _start_server(port: int, home: object, log_path: object) -> object:
    """Start `loopstack server` as a child process and wait until /health answers."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from loopstack.errors import StoreUnavailable

    env = {**os.environ, "LOOPSTACK_HOME": str(home)}
    with open(str(log_path), "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loopstack.cli",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StoreUnavailable(
                f"the loopstack server exited with code {proc.returncode} before answering "
                f"/health; its log ({log_path}) ends: {_log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    _stop_server(proc)
    raise StoreUnavailable(
        f"the loopstack server did not answer {url}/health within "
        f"{HEALTH_TIMEOUT_S:.0f}s; its log is {log_path}"
    )


def _stop_server(proc: object) -> None:
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _train(url: str, epochs: int) -> object:
    """Run the demo with LOOPSTACK_TRACKING_URI pointing at the server (restored afterwards)."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from loopstack.cli._demo_model import train_and_log
    from loopstack.cli._output import console

    previous = os.environ.get("LOOPSTACK_TRACKING_URI")
    os.environ["LOOPSTACK_TRACKING_URI"] = url
    try:
        with Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=console(),
        ) as progress:
            task = progress.add_task("train", total=epochs, status="")

            def on_epoch(epoch: int, m: dict[str, float]) -> None:
                progress.update(
                    task,
                    advance=1,
                    status=f"loss {m['loss']:.4f}  val_accuracy {m['val_accuracy']:.3f}",
                )

            return train_and_log(epochs=epochs, on_epoch=on_epoch)
    finally:
        if previous is None:
            os.environ.pop("LOOPSTACK_TRACKING_URI", None)
        else:
            os.environ["LOOPSTACK_TRACKING_URI"] = previous


def _summary(result: object, url: str, port: int, keep_running: bool) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from loopstack.cli._demo_model import EXPERIMENT, DemoResult
    from loopstack.cli._output import console, fmt_value

    assert isinstance(result, DemoResult)
    out = console()
    table = Table(title="the demo run", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("run id", result.run_id)
    table.add_row("experiment", f"{EXPERIMENT} ({result.experiment_id})")
    for key in ("lr", "epochs", "batch_size", "l2"):
        table.add_row(f"params.{key}", str(result.params[key]))
    for key, value in result.metrics.items():
        table.add_row(f"metrics.{key}", fmt_value(value))
    table.add_row("artifacts", ", ".join(result.artifacts))
    out.print(table)
    if keep_running:
        lines = [f"The server is running at {url} (Ctrl-C stops it)."]
    else:
        lines = [
            "The server has stopped. Start it again (same LOOPSTACK_HOME) with",
            f"    loopstack server --port {port}",
            "and then:",
        ]
    lines += [
        f"  API docs:            {url}/docs",
        f"  Prometheus metrics:  {url}/metrics",
        f"  this run:            loopstack runs show {result.run_id}",
        f"  all its runs:        loopstack runs list --experiment {EXPERIMENT}",
        "  MLflow clients:      pip install mlflow   (the client; not a loopstack dependency)",
        "                       export MLFLOW_TRACKING_URI=" + url,
        '                       python -c "import mlflow; print(mlflow.search_runs('
        f"experiment_names=['{EXPERIMENT}']))\"",
        "  loopstack clients:   export LOOPSTACK_TRACKING_URI=" + url,
    ]
    out.print(Panel.fit("\n".join(lines), title="where to look", title_align="left"))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def quickstart(
    port: int = typer.Option(5000, help="Port for the server (1-65535)."),
    keep_running: bool = typer.Option(
        False, "--keep-running/--no-keep-running", help="Keep serving after the demo until Ctrl-C."
    ),
    epochs: int = typer.Option(30, min=1, max=1000, help="Training epochs of the demo model."),
) -> None:
    """Start a server on the embedded store, log a demo training run to it, show where to look."""
    import signal
    import time

    from loopstack.cli._output import console
    from loopstack.cli._serve import bind_error
    from loopstack.config import settings
    from loopstack.errors import Conflict

    config = settings()
    problem = bind_error("127.0.0.1", port)
    if problem:
        raise Conflict(problem)
    config.home.mkdir(parents=True, exist_ok=True)
    log_path = config.home / "quickstart-server.log"
    url = f"http://127.0.0.1:{port}"
    out = console()
    out.print(f"starting the loopstack server on {url} (store: {config.home}) …")
    # SIGTERM (a supervisor, `kill`) must stop the child server too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    proc = None
    try:
        proc = _start_server(port, config.home, log_path)
        out.print(f"[green]✓[/] server up at {url}")
        result = _train(url, epochs)
        _summary(result, url, port, keep_running)
        if keep_running:
            try:
                while getattr(proc, "poll")() is None:  # noqa: B009 - typed as object above
                    time.sleep(0.5)
            except KeyboardInterrupt:
                out.print("stopping the server …")
    finally:
        if proc is not None:
            _stop_server(proc)
        signal.signal(signal.SIGTERM, previous)
