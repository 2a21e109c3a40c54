"""`loopstack demo`: the closed loop end to end on synthetic card payments."""

from __future__ import annotations

from pathlib import Path

import typer


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def demo(
    home: Path | None = typer.Option(
        None, help="The demo's own store, wiped at the start (default: $LOOPSTACK_HOME/demo)."
    ),
    seed: int = typer.Option(0, help="Seed of the synthetic world."),
    serve_port: int = typer.Option(8081, help="Port of the fraud-api endpoint (1-65535)."),
    port: int = typer.Option(
        5000, help="Port of the server (web UI, APIs) that --keep-running starts (1-65535)."
    ),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Keep serving (and sending) until Ctrl-C."
    ),
) -> None:
    """Run the whole loop: data, features, training, approval, serving, drift, retraining,
    gates, canary, promotion, and an automatic rollback, in two to five minutes."""
    import signal

    from loopstack.cli._output import console
    from loopstack.cli._serve import bind_error
    from loopstack.config import settings
    from loopstack.demo import DemoFailed, DemoOptions, run_demo
    from loopstack.errors import Conflict, LoopstackError

    problem = bind_error("127.0.0.1", serve_port, "--serve-port")
    if not problem and keep_running:
        problem = bind_error("127.0.0.1", port, "--port")
    if problem:
        raise Conflict(problem)
    where = (home or settings().home / "demo").expanduser().resolve()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's stop is Ctrl-C
    try:
        run_demo(
            DemoOptions(
                where, seed=seed, serve_port=serve_port, port=port, keep_running=keep_running
            ),
            console(),
        )
    except DemoFailed as exc:
        raise LoopstackError(f"the demo stopped: {exc}") from exc
    except KeyboardInterrupt:
        console().print("stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
