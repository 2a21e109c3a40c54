"""`loopstack serve`: serve registered models over the Open Inference Protocol and JSON.

``loopstack serve --model models:/churn@champion --port 8080`` serves one endpoint
named after the model; each further ``--model`` adds one, and a ``--name`` names the
``--model`` just before it: ``--model models:/churn@champion --model
models:/churn@challenger --name churn-next``.

``--deployment churn-api`` (repeatable) serves a stored deployment, each request routed
by its policy, and ``--deployments`` every deployment of the project (``--project``);
the replicas poll the revisions (``--refresh-s``, 1 s by default) and swap a changed
deployment in once its arms are warm.

``--grpc-port 8081`` serves the Open Inference Protocol over gRPC too (KServe's
``inference.GRPCInferenceService``, what ``tritonclient.grpc`` speaks), from every worker
on that one port; it needs the ``loopstack[grpc]`` extra.

``--enrich fail_closed|degraded`` makes every ``--model`` endpoint take rows carrying only
entity keys and read the model's features from the online store (the version's training
set names them); ``--default FEATURE=VALUE`` (repeatable; VALUE read as JSON, else
text) declares the value degraded mode serves when a feature is stale or the store
fails; ``--enrich-config FILE`` (JSON or YAML) gives the whole setting (``mode``,
``defaults``, ``max_age_s``, ``timeout_s``, ``breaker``, ``features``, ``online_url``),
which ``--enrich`` and ``--default`` override. A stored deployment enriches as its own
options say (``DeploymentStore.set_enrichment``).

Operations: ``--auth`` asks every request but health, readiness and metrics for a token
of a user with at least the viewer role in the served project; ``--rate-limit N``
answers a caller past N requests per second (bursts of ``--rate-burst``) with 429 and
``Retry-After``; ``--ssl-certfile``/``--ssl-keyfile`` serve HTTPS; on SIGTERM the
requests in flight finish (for at most ``--graceful-timeout`` seconds) before a worker
stops.

Concurrent requests to one model share a model call: ``--max-batch-size`` (32) requests
at most, a batch formed under load waiting at most ``--batch-latency-ms`` (2) for
company, at most ``--max-queue`` (256) requests waiting (beyond: 503 with Retry-After).
A stored deployment's options ``max_batch_size``, ``batch_latency_ms`` and ``max_queue``
override them for it. Every prediction is written to the prediction log unless
``--no-prediction-log``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from loopstack.cli._project import PROJECT

__all__ = ["ServeCommand", "enrichment_config", "pair_models", "serve"]


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


def enrichment_config(mode: str | None, defaults: list[str], config_file: Path | None) -> Any:
    """The ``EnrichmentConfig`` the options give, or None when none asks to enrich.

    >>> enrichment_config("degraded", ["trips=0", "city=unknown"], None).default_values
    {'city': 'unknown', 'trips': 0}
    """
    from loopstack.errors import Invalid
    from loopstack.serving import EnrichmentConfig

    if mode is None and not defaults and config_file is None:
        return None
    doc: dict[str, Any] = {}
    if config_file is not None:
        doc = _read_config(config_file)
    if mode is not None:
        doc["mode"] = mode
    given = dict(doc.get("defaults") or {})
    for item in defaults:
        feature, sep, text = item.partition("=")
        if not sep or not feature:
            raise Invalid(
                f"--default is FEATURE=VALUE (trips=0); got {item!r} instead", field="default"
            )
        try:
            given[feature] = json.loads(text)
        except ValueError:
            given[feature] = text
    if given:
        doc["defaults"] = given
    return EnrichmentConfig.parse(doc)


def _read_config(path: Path) -> dict[str, Any]:
    from loopstack.errors import Invalid

    try:
        text = path.read_text()
    except OSError as exc:
        raise Invalid(
            f"--enrich-config {path} cannot be read: {exc.strerror}", field="enrich_config"
        ) from None
    try:
        if path.suffix.lower() == ".json":
            got = json.loads(text)
        else:
            import yaml

            got = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json's ValueError or yaml's YAMLError
        raise Invalid(
            f"--enrich-config {path} is not valid JSON/YAML: {exc}", field="enrich_config"
        ) from None
    if not isinstance(got, dict):
        raise Invalid(
            f"--enrich-config {path} must hold an object (mode, defaults, ...); got "
            f"{type(got).__name__}",
            field="enrich_config",
        )
    return got


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
    no_access_log: bool = typer.Option(
        False, "--no-access-log", help="Do not log one line per request."
    ),
    grpc_port: int | None = typer.Option(
        None,
        "--grpc-port",
        help="Also serve the Open Inference Protocol v2 over gRPC on this port (KServe's "
        "inference.GRPCInferenceService; every worker shares it). Needs "
        "pip install 'loopstack[grpc]'.",
    ),
    enrich: str | None = typer.Option(
        None,
        "--enrich",
        help="fail_closed or degraded: --model endpoints take entity keys and read the "
        "model's features from the online store.",
    ),
    default: list[str] = typer.Option(
        [], "--default", help="FEATURE=VALUE served in degraded mode; repeat for more."
    ),
    enrich_config: Path | None = typer.Option(
        None, "--enrich-config", help="A JSON or YAML file with the enrichment settings."
    ),
    auth_flag: bool = typer.Option(
        False,
        "--auth",
        help="Require a bearer token of a user with the viewer role or higher in the "
        "served project on every route but health, readiness and metrics (401 without, "
        "403 for another project's). Without it: LOOPSTACK_SERVING_AUTH, else off.",
    ),
    rate_limit: float | None = typer.Option(
        None,
        "--rate-limit",
        min=0,
        metavar="N",
        help="Requests per second per caller (its token, or its address without auth) "
        "each worker lets through; past it, 429 with Retry-After. 0: none. Default: "
        "LOOPSTACK_SERVING_RATE_LIMIT, else 0.",
    ),
    rate_burst: float | None = typer.Option(
        None,
        "--rate-burst",
        min=0,
        metavar="N",
        help="Requests a caller may send at once before --rate-limit paces it (its "
        "bucket's size; default: one second's worth, at least 1).",
    ),
    ssl_certfile: str | None = typer.Option(
        None, "--ssl-certfile", metavar="PATH", help="Serve HTTPS with this certificate (PEM)."
    ),
    ssl_keyfile: str | None = typer.Option(
        None, "--ssl-keyfile", metavar="PATH", help="The private key of --ssl-certfile (PEM)."
    ),
    graceful_timeout: int = typer.Option(
        30,
        "--graceful-timeout",
        min=1,
        metavar="SECONDS",
        help="On SIGTERM, how long the requests in flight may take to finish.",
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
    no_prediction_log: bool = typer.Option(
        False,
        "--no-prediction-log",
        help="Do not record predictions (and feedback) in the event log.",
    ),
    async_workers: int = typer.Option(
        0,
        "--async-workers",
        min=0,
        max=256,
        help="Async job workers per worker process (POST /endpoints/NAME/jobs); needs --queue.",
    ),
    queue: str | None = typer.Option(
        None,
        "--queue",
        metavar="sql|redis://...",
        help="Where async jobs wait: the metadata database (sql) or a Redis URL.",
    ),
) -> None:
    """Serve models: Open Inference Protocol v2 (/v2/... and, with --grpc-port, gRPC) and
    JSON (/endpoints/NAME/predict)."""
    from loopstack import __version__
    from loopstack.cli._output import console, fail
    from loopstack.cli._serve import bind_error
    from loopstack.registry import resolve_model_uri
    from loopstack.server import serve_endpoints
    from loopstack.serving import BatchSettings, EndpointSpec, ServingRuntime, endpoint_name_for

    access_log = not no_access_log
    auth = True if auth_flag else None  # None: the settings' (LOOPSTACK_SERVING_AUTH)
    batching = BatchSettings(max_batch_size, batch_latency_ms, max_queue)
    pairs = pair_models(ctx.meta.get("loopstack.serve.args", []))
    enrichment = enrichment_config(enrich, default, enrich_config)
    if enrichment is not None and not pairs:
        fail("--enrich, --default and --enrich-config apply to --model endpoints; give --model")
    specs = [
        EndpointSpec(given or endpoint_name_for(uri), uri, onnx, enrichment) for uri, given in pairs
    ]
    ServingRuntime(specs)  # refuses two endpoints of one name
    if not specs and not deployment and not all_deployments:
        fail("nothing to serve: give --model URI, --deployment NAME or --deployments")
    if deployment and all_deployments:
        fail("give --deployment NAME or --deployments (every one), not both")
    if async_workers and queue is None:
        fail("--async-workers needs a job queue: add --queue sql or --queue redis://HOST:6379/0")
    if queue is not None and queue != "sql" and not queue.startswith(("redis://", "rediss://")):
        fail(f"--queue is 'sql' or a redis:// URL; got {queue!r}")
    problem = bind_error(host, port) or _tls_error(ssl_certfile, ssl_keyfile)
    if problem:
        fail(problem)
    if grpc_port is not None:
        from loopstack.server import grpc_missing

        if grpc_port == port:
            fail(f"--grpc-port must differ from --port; both are {port}")
        problem = grpc_missing() or bind_error(host, grpc_port, "--grpc-port")
        if problem:
            fail(problem)
    if auth or (auth is None and _settings().serving_auth):
        from loopstack.server import access_from_settings

        access_from_settings(_settings())  # refuses a tracking URI or an unknown project
    resolved = [(spec, resolve_model_uri(spec.model_uri)[2]) for spec in specs]  # fail fast
    served_deployments = _check_deployments(deployment, all_deployments, [s.name for s in specs])
    if refresh_s is None:
        refresh_s = 1.0 if served_deployments is not None else 0.0
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if ssl_certfile else 'http'}://{shown}:{port}"
    out = console()
    out.print(f"loopstack {__version__} serving on [bold]{url}[/]", highlight=False)
    for spec, version in resolved:
        what = f"version {version.version}, {version.flavor}" if version else "a run's model"
        if spec.enrichment is not None:
            what += f"; features from the online store, {spec.enrichment.mode}"
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
        f"{'off' if no_prediction_log else 'on'}",
        highlight=False,
    )
    out.print(
        f"  batching:   at most {max_batch_size} requests a call, {batch_latency_ms:g} ms, "
        f"queue {max_queue}",
        highlight=False,
    )
    first = specs[0].name if specs else (served_deployments or [None])[0]
    shown_name = first if isinstance(first, str) else getattr(first, "name", "NAME")
    config = _settings()
    on = auth if auth is not None else config.serving_auth
    limit = rate_limit if rate_limit is not None else config.serving_rate_limit
    who = f"viewer or higher in {config.project or 'default'!r}" if on else "off"
    out.print(
        f"  auth:       {who}"
        f"   rate limit: {f'{limit:g}/s per caller per worker' if limit else 'off'}"
        f"   graceful stop: {graceful_timeout} s",
        highlight=False,
    )
    out.print(f"  OIP v2:     {url}/v2/models/{shown_name}/infer", highlight=False)
    if grpc_port is not None:
        out.print(
            f"  OIP gRPC:   {shown}:{grpc_port} (inference.GRPCInferenceService)",
            highlight=False,
        )
    out.print(f"  JSON:       {url}/endpoints/{shown_name}/predict", highlight=False)
    if queue is not None:
        out.print(
            f"  async:      {url}/endpoints/{shown_name}/jobs ({queue.split('@')[-1]}, "
            f"{async_workers} workers each)",
            highlight=False,
        )
    out.print(f"  ready:      {url}/v2/health/ready (after every model loads)", highlight=False)
    serve_endpoints(
        specs,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        refresh_s=refresh_s,
        batching=batching,
        prediction_log=not no_prediction_log,
        deployments=None
        if served_deployments is None
        else (project, list(deployment) or None, onnx),
        grpc_port=grpc_port,
        auth=auth,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        graceful_timeout_s=graceful_timeout,
        job_queue=queue,
        async_workers=async_workers,
    )


def _settings() -> Any:
    from loopstack.config import settings

    return settings()


def _tls_error(certfile: str | None, keyfile: str | None) -> str | None:
    """Why the TLS options cannot serve (one line), or None."""
    from pathlib import Path

    if (certfile is None) != (keyfile is None):
        return "give --ssl-certfile and --ssl-keyfile together (a certificate and its key)"
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not Path(path).is_file():
            return f"{option} must name a readable PEM file; got {path!r} (no such file)"
    return None


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
