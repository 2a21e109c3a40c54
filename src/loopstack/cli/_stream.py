"""`loopstack stream run ENDPOINT --source redis://host:port/db?stream=NAME`: score a
stream's events with the endpoint's stored deployment, at least once, written once.

Each event is answered through the serving path (the deployment's routing policy,
re-read every second), its prediction written to the prediction log, and only then
acknowledged; a replay or a redelivery writes nothing twice. Bad events go to the
dead-letter stream (``--dead-letter``, default ``<stream>:dead``) with the reason.
``--write-feature VIEW:FEATURE`` writes each score back to the online store;
``--metrics-port`` serves Prometheus metrics (events by outcome, end-to-end lag).
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Streaming inference: score events as they arrive.")


@app.command("run")
def run(
    endpoint: str = typer.Argument(..., help="The stored deployment that scores (its name)."),
    source: str = typer.Option(
        ..., "--source", help="redis://host:port/db?stream=NAME (or kafka://broker/topic)."
    ),
    group: str = typer.Option("loopstack", "--group", help="The consumer group."),
    consumer: str = typer.Option(
        None, "--consumer", help="This consumer's name in the group (default: host-pid)."
    ),
    write_feature: str = typer.Option(
        None, "--write-feature", help="VIEW:FEATURE to write each score to (online store)."
    ),
    dead_letter: str = typer.Option(
        None, "--dead-letter", help="The dead-letter stream (default <stream>:dead)."
    ),
    batch: int = typer.Option(100, "--batch", min=1, help="Events read per batch (at most)."),
    routing_key: str = typer.Option(
        None, "--routing-key", help="The event field that keys sticky routing (canary, A/B)."
    ),
    claim_idle_ms: int = typer.Option(
        30_000, "--claim-idle-ms", min=1, help="Reclaim a consumer's events idle this long."
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Serve Prometheus /metrics on this port (0: any free)."
    ),
    until_idle: float = typer.Option(
        None, "--until-idle", help="Stop once nothing came nor was pending for SECONDS."
    ),
) -> None:
    """Score the events of a stream with ENDPOINT's stored deployment, into the
    prediction log (and the online store with --write-feature)."""
    import os
    import signal
    import socket
    import time

    from rich.live import Live
    from rich.text import Text

    from loopstack.cli._output import console
    from loopstack.serving import deployments
    from loopstack.serving.stream import StreamScorer, StreamStats, open_source, parse_write_feature

    deployments().get(endpoint)  # bad input changes nothing: no consumer group made
    if write_feature is not None:
        parse_write_feature(write_feature)
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    options: dict[str, object] = {"dead_letter": dead_letter, "claim_idle_ms": claim_idle_ms}
    stream = open_source(source, group, name, **options)
    out = console()
    live = Live(Text("starting"), console=out, refresh_per_second=4, transient=False)
    shown = [0.0]

    def status(stats: StreamStats) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.25:
            return
        shown[0] = now
        lag = "-" if stats.last_lag_ms is None else f"{stats.last_lag_ms:,.0f} ms"
        live.update(
            Text(
                f"{endpoint} <- {stream.name}: {stats.scored:,} scored, {stats.skipped:,} "
                f"skipped, {stats.dead_lettered:,} dead-lettered, {stats.rate:,.0f} ev/s, "
                f"lag {lag}"
            )
        )

    scorer = StreamScorer(
        endpoint,
        stream,
        write_feature=write_feature,
        routing_key=routing_key,
        batch=batch,
        on_batch=status,
    )
    scorer.open()
    if metrics_port is not None:
        port = scorer.metrics.serve(metrics_port)
        out.print(f"metrics on http://127.0.0.1:{port}/metrics", highlight=False)
    out.print(
        f"scoring {stream.name} (group {group}, consumer {name}) with {endpoint}", highlight=False
    )
    signal.signal(signal.SIGTERM, lambda *_: scorer.stop())
    try:
        with live:
            stats = scorer.run(idle_exit_s=until_idle)
            shown[0] = 0.0
            status(stats)
    except KeyboardInterrupt:
        stats = scorer.stats
    out.print(
        f"done: {stats.scored:,} scored, {stats.skipped:,} skipped, "
        f"{stats.dead_lettered:,} dead-lettered",
        highlight=False,
    )
