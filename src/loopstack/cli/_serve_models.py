"""`loopstack serve`: serve registered models over the Open Inference Protocol and JSON.

``loopstack serve --model models:/churn@champion --port 8080`` serves one endpoint
named after the model; each further ``--model`` adds one, and a ``--name`` names the
``--model`` just before it: ``--model models:/churn@champion --model
models:/churn@challenger --name churn-next``.

``--deployment churn-api`` (repeatable) serves a stored deployment, each request routed
by its policy, and ``--deployments`` every deployment of the project (``--project``);
the replicas poll the revisions (``--refresh-s``, 1 s by default) and swap a changed
deployment in once its arms are warm.

Concurrent requests to one model share a model call: ``--max-batch-size`` (32) requests
at most, a batch formed under load waiting at most ``--batch-latency-ms`` (2) for
company, at most ``--max-queue`` (256) requests waiting (beyond: 503 with Retry-After).
A stored deployment's options ``max_batch_size``, ``batch_latency_ms`` and ``max_queue``
override them for it. Every prediction is written to the prediction log unless
``--no-prediction-log``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

from loopstack.cli._project import PROJECT

__all__ = ["ServeCommand", "pair_models", "serve"]


class ServeCommand(TyperCommand):
    """Keeps the raw arguments: a ``--name`` belongs to the ``--model`` before it, an
    order click does not keep between two options."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["loopstack.serve.args"] = list(args)
        return super().parse_args(ctx, args)  # type: ignore[no-any-return]


def pair_models(args: list[str]) -> list[tuple[str, str | None]]:
    """``(model URI, name or None)`` in the order given, from the raw arguments.

    >>> pair_models(["--model", "models:/a@x", "--model", "models:/b/1", "--name", "bee"])
    [('models:/a@x', None), ('models:/b/1', 'bee')]
    """
    from loopstack.errors import Invalid

    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        option, _, inline = arg.partition("=")
        if option in ("--model", "-m", "--name"):
            value = inline if inline else (args[i + 1] if i + 1 < len(args) else "")
            i += 1 if inline else 2
            if option == "--name":
                if not pairs:
                    raise Invalid("--name names the --model before it; give --model first")
                if pairs[-1][1] is not None:
                    raise Invalid(f"--model {pairs[-1][0]} is given two names")
                pairs[-1] = (pairs[-1][0], value)
            else:
                pairs.append((value, None))
            continue
        i += 1
    return pairs


def serve(
    ctx: typer.Context,
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="A model URI to serve (models:/name@alias, models:/name/3, "
        "runs:/id/path); repeat for more endpoints.",
    ),
    name: list[str] = typer.Option(
        [], "--name", help="The endpoint name of the --model before it (default: the model's)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, help="Port to listen on (1-65535)."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (one BLAS thread each)."),
    onnx: bool = typer.Option(False, "--onnx", help="Predict with the ONNX copy where one exists."),
    deployment: list[str] = typer.Option(
        [], "--deployment", "-d", help="A stored deployment to serve; repeat for more."
    ),
    all_deployments: bool = typer.Option(
        False, "--deployments", help="Serve every stored deployment of the project."
    ),
    project: str | None = PROJECT,
    refresh_s: float | None = typer.Option(
        None,
        "--refresh-s",
        min=0,
        help="Re-resolve aliases and poll deployments this often (default: 1 with "
        "deployments, else 0: never).",
    ),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log one line per request."
    ),
    max_batch_size: int = typer.Option(
        32, "--max-batch-size", min=1, max=4096, help="Most requests in one model call."
    ),
    batch_latency_ms: float = typer.Option(
        2.0,
        "--batch-latency-ms",
        min=0,
        max=10_000,
        help="Longest a batch formed under load waits for more requests (a lone request "
        "never waits).",
    ),
    max_queue: int = typer.Option(
        256,
        "--max-queue",
        min=1,
        max=1_000_000,
        help="Most requests waiting per model; beyond, 503 with Retry-After.",
    ),
    prediction_log: bool = typer.Option(
        True,
        "--prediction-log/--no-prediction-log",
        help="Record every prediction (and feedback) in the event log.",
    ),
) -> None:
    """Serve models: Open Inference Protocol v2 (/v2/...) and JSON (/endpoints/NAME/predict)."""
    from loopstack import __version__
    from loopstack.cli._output import console, fail
    from loopstack.cli._serve import bind_error
    from loopstack.registry import resolve_model_uri
    from loopstack.server import serve_endpoints
    from loopstack.serving import BatchSettings, EndpointSpec, ServingRuntime, endpoint_name_for

    batching = BatchSettings(max_batch_size, batch_latency_ms, max_queue)
    pairs = pair_models(ctx.meta.get("loopstack.serve.args", []))
    specs = [
        EndpointSpec(given or endpoint_name_for(uri), uri, prefer_onnx=onnx) for uri, given in pairs
    ]
    ServingRuntime(specs)  # refuses two endpoints of one name
    if not specs and not deployment and not all_deployments:
        fail("nothing to serve: give --model URI, --deployment NAME or --deployments")
    if deployment and all_deployments:
        fail("give --deployment NAME or --deployments (every one), not both")
    problem = bind_error(host, port)
    if problem:
        fail(problem)
    resolved = [(spec, resolve_model_uri(spec.model_uri)[2]) for spec in specs]  # fail fast
    served_deployments = _check_deployments(deployment, all_deployments, [s.name for s in specs])
    if refresh_s is None:
        refresh_s = 1.0 if served_deployments is not None else 0.0
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    out = console()
    out.print(f"loopstack {__version__} serving on [bold]{url}[/]", highlight=False)
    for spec, version in resolved:
        what = f"version {version.version}, {version.flavor}" if version else "a run's model"
        out.print(
            f"  endpoint:   {spec.name} <- {spec.model_uri} ({what})",
            highlight=False,
            soft_wrap=True,
        )
    for d in served_deployments or []:
        arms = ", ".join(f"{a.name}={a.model_ref} ({a.role} {a.weight:g}%)" for a in d.arms)
        out.print(
            f"  deployment: {d.name} revision {d.revision}, {d.policy}: {arms}",
            highlight=False,
            soft_wrap=True,
        )
    if all_deployments and not served_deployments:
        out.print("  deployments: none yet (new ones are picked up)", highlight=False)
    out.print(
        f"  workers:    {workers} (one BLAS thread each)   access log: "
        f"{'on' if access_log else 'off'}   prediction log: "
        f"{'on' if prediction_log else 'off'}",
        highlight=False,
    )
    out.print(
        f"  batching:   at most {max_batch_size} requests a call, {batch_latency_ms:g} ms, "
        f"queue {max_queue}",
        highlight=False,
    )
    first = specs[0].name if specs else (served_deployments or [None])[0]
    shown_name = first if isinstance(first, str) else getattr(first, "name", "NAME")
    out.print(f"  OIP v2:     {url}/v2/models/{shown_name}/infer", highlight=False)
    out.print(f"  JSON:       {url}/endpoints/{shown_name}/predict", highlight=False)
    out.print(f"  ready:      {url}/v2/health/ready (after every model loads)", highlight=False)
    serve_endpoints(
        specs,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        refresh_s=refresh_s,
        batching=batching,
        prediction_log=prediction_log,
        deployments=None
        if served_deployments is None
        else (project, list(deployment) or None, onnx),
    )


def _check_deployments(names: list[str], every: bool, endpoints: list[str]) -> list[Any] | None:
    """The deployments to serve as stored now (None when none is asked for); fails fast
    on an unknown name or one an endpoint of --model already has."""
    if not names and not every:
        return None
    from loopstack.cli._output import fail
    from loopstack.serving import deployments

    store = deployments()
    # NotFound names the deployment asked for
    found = store.list_deployments() if every else [store.get(n) for n in dict.fromkeys(names)]
    clash = sorted({d.name for d in found} & set(endpoints))
    if clash:
        fail(f"{clash} named both by --model (--name) and as a deployment; rename the --model")
    return found
