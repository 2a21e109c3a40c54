"""The serving runtime: endpoints that resolve a model URI, load it once, warm it, answer.

An ``EndpointSpec`` names an endpoint and the model URI it serves
(``models:/churn@champion``, ``models:/churn/3``, ``runs:/<id>/model``). An
``Endpoint`` resolves the URI through the registry (an alias is followed to its
version; the version's recorded digests are checked on load), loads the package
through ``load_model`` (any flavor, MLflow-logged packages included; the ONNX copy
with ``prefer_onnx``) and warms it with one prediction on a sample built from the
signature. It is ready only after both.

Loaded models are cached by package digest in a ``ModelCache``: two endpoints on the
same version share one load. A ``ServingRuntime`` holds the endpoints of one serving
process; ``apply`` replaces its endpoint list (a changed spec is loaded beside the old
one and swapped in once warm) and ``refresh`` re-resolves aliases, so a moved alias
is picked up without a restart.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid, LoopstackError, NotFound, NotReady
from loopstack.serving._enrich_config import EnrichmentConfig

if TYPE_CHECKING:
    from loopstack.registry import ModelVersion
    from loopstack.registry.flavors import LoadedModel, Signature
    from loopstack.serving._deployments import ArmStats, Deployment
    from loopstack.serving._enrich import Enricher

__all__ = [
    "Choice",
    "ENDPOINTS_ENV",
    "Endpoint",
    "EndpointSpec",
    "ModelCache",
    "ServedModel",
    "ServingRuntime",
    "settle_heap",
    "endpoint_name_for",
    "limit_threads",
    "specs_from_env",
    "specs_to_env",
]

log = logging.getLogger("loopstack.serving")

#: the environment variable that hands the endpoint list to each worker process (JSON)
ENDPOINTS_ENV = "LOOPSTACK_SERVING_ENDPOINTS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint's name and the model URI it serves (and, when its requests carry only
    entity keys, how it reads the model's features: ``enrichment``).

    >>> EndpointSpec("churn", "models:/churn@champion").to_dict()
    {'name': 'churn', 'model_uri': 'models:/churn@champion', 'prefer_onnx': False}
    """

    name: str
    model_uri: str
    prefer_onnx: bool = False
    enrichment: EnrichmentConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise Invalid(
                "an endpoint name must be 1-128 letters, digits, '.', '_' or '-' (starting "
                f"with a letter or digit); got {self.name!r}",
                field="name",
            )
        if not isinstance(self.model_uri, str) or not self.model_uri:
            raise Invalid(f"a model URI is needed; got {self.model_uri!r}", field="model_uri")

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "model_uri": self.model_uri, "prefer_onnx": self.prefer_onnx}
        if self.enrichment is not None:
            out["enrichment"] = self.enrichment.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSpec:
        enrichment = data.get("enrichment")
        try:
            return cls(
                str(data["name"]),
                str(data["model_uri"]),
                bool(data.get("prefer_onnx")),
                None if enrichment is None else EnrichmentConfig.parse(enrichment),
            )
        except (KeyError, TypeError) as exc:
            raise Invalid(
                f"an endpoint spec is {{'name', 'model_uri', 'prefer_onnx'?}}; got {data!r}",
                field="endpoints",
            ) from exc


def endpoint_name_for(model_uri: str) -> str:
    """The default endpoint name of a URI: the model's name (``models:/churn@x`` -> churn),
    or the last part of a ``runs:/`` path."""
    if model_uri.startswith("models:/"):
        rest = model_uri[len("models:/") :]
        return re.split(r"[@/]", rest, maxsplit=1)[0]
    return model_uri.rstrip("/").rsplit("/", 1)[-1]


def specs_to_env(specs: Iterable[EndpointSpec]) -> str:
    """The endpoint list as the JSON ``ENDPOINTS_ENV`` carries to worker processes."""
    return json.dumps([s.to_dict() for s in specs])


def specs_from_env() -> list[EndpointSpec]:
    """The endpoint list a worker process was started with (``ENDPOINTS_ENV``)."""
    raw = os.environ.get(ENDPOINTS_ENV)
    if not raw:
        raise Invalid(f"{ENDPOINTS_ENV} names no endpoints", field=ENDPOINTS_ENV)
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise Invalid(f"{ENDPOINTS_ENV} is not JSON ({exc})", field=ENDPOINTS_ENV) from exc
    if not isinstance(items, list):
        raise Invalid(f"{ENDPOINTS_ENV} must be a JSON list", field=ENDPOINTS_ENV)
    return [EndpointSpec.from_dict(item) for item in items]


def limit_threads() -> None:
    """One BLAS/OpenMP thread per process: worker processes, not threads, give parallelism.

    The variables count only if set before the BLAS library starts, so the CLI sets them
    before the workers are spawned too; threadpoolctl (when installed) and torch limit a
    library already loaded.
    """
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


@dataclass(frozen=True)
class ServedModel:
    """A loaded, warmed model and the version that answers with it."""

    model: LoadedModel
    model_uri: str
    version: ModelVersion | None
    key: str  # the cache key: the package digest (or the URI, for a runs:/ model)
    #: reads the features of requests that carry entity keys (None: requests carry them)
    enricher: Enricher | None = None

    @property
    def version_label(self) -> str | None:
        """The version number as text (``"3"``), None for a ``runs:/`` model."""
        return None if self.version is None else str(self.version.version)

    @property
    def signature(self) -> Signature | None:
        return self.model.signature

    @property
    def output_names(self) -> list[str]:
        """``predict`` (labels or values) and, for a classifier, ``predict_proba``."""
        return ["predict", "predict_proba"] if self.model.has_proba else ["predict"]

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        """Every output of the model on ``inputs`` (checked against its signature)."""
        labels, proba = self.model.predict_both(inputs)
        outputs = {"predict": labels}
        if proba is not None:
            outputs["predict_proba"] = proba
        return outputs


class ModelCache:
    """Loaded models by package digest: a version is loaded once, whoever asks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, LoadedModel] = {}
        self._loading: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def keys(self) -> frozenset[str]:
        """The keys of the models loaded now."""
        with self._lock:
            return frozenset(self._models)

    def get(self, key: str, model_uri: str, prefer_onnx: bool) -> LoadedModel:
        """The model under ``key``, loading ``model_uri`` if nobody has yet."""
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                return found
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # one load per key even when endpoints load at once
            found = self._models.get(key)
            if found is None:
                from loopstack.registry import load_model

                found = load_model(model_uri, prefer_onnx=prefer_onnx)
                with self._lock:
                    self._models[key] = found
            return found

    def keep(self, keys: Iterable[str]) -> None:
        """Forget every model but those under ``keys`` (after a swap: the old version goes)."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._models if k not in wanted]:
                del self._models[key]
                self._loading.pop(key, None)


def warm_sample(signature: Signature | None) -> Any:
    """One row of input the signature accepts (zeros, empty strings, False), or None."""
    if signature is None:
        return None
    import pandas as pd

    from loopstack.registry.flavors import TensorSpec

    if isinstance(signature.inputs, TensorSpec):
        shape = tuple(1 if d == -1 else d for d in signature.inputs.shape)
        try:
            return np.zeros(shape, dtype=signature.inputs.dtype)
        except TypeError:
            return None
    row: dict[str, Any] = {}
    for column in signature.columns:
        try:
            kind = np.dtype(column.dtype).kind
        except TypeError:
            kind = "U"
        row[column.name] = {"b": False, "i": 0, "u": 0, "f": 0.0, "M": pd.Timestamp(0)}.get(
            kind, ""
        )
    return pd.DataFrame([row]).astype(
        {c.name: c.dtype for c in signature.columns if c.dtype not in ("str", "object")},
        errors="ignore",
    )


class Endpoint:
    """One served endpoint: ``loading`` until its model is loaded and warm, then ``ready``
    (or ``failed``, with the reason in ``error``)."""

    def __init__(self, spec: EndpointSpec) -> None:
        self.spec = spec
        self.state = "loading"
        self.error: str | None = None
        self.served: ServedModel | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def resolve(self) -> tuple[str, ModelVersion | None]:
        """(cache key, version) of what the URI names now: an alias is followed."""
        from loopstack.registry import resolve_model_uri

        _, _, version = resolve_model_uri(self.spec.model_uri)
        key = version.digest if version is not None and version.digest else self.spec.model_uri
        return f"{key}{'+onnx' if self.spec.prefer_onnx else ''}", version

    def load(self, cache: ModelCache) -> None:
        """Resolve, load (through ``cache``) and warm; never raises, sets ``state``."""
        try:
            key, version = self.resolve()
            uri = version.uri if version else self.spec.model_uri  # the alias, followed once
            model = cache.get(key, uri, self.spec.prefer_onnx)
            enricher = None
            if self.spec.enrichment is not None:
                from loopstack.serving._enrich import Enricher

                enricher = Enricher.for_version(self.spec.enrichment, version, model.signature)
            served = ServedModel(model, self.spec.model_uri, version, key, enricher)
            _warm(served, self.name)
        except LoopstackError as exc:
            self.state, self.error = "failed", exc.message
            log.warning("endpoint %s could not load %s: %s", self.name, self.spec.model_uri, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a framework's error: the endpoint says so
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("endpoint %s could not load %s", self.name, self.spec.model_uri)
            return
        self.served, self.state, self.error = served, "ready", None

    def model(self) -> ServedModel:
        """The model answering now; ``NotReady`` (503) while loading or after a failed load."""
        served = self.served
        if served is None:
            why = f": {self.error}" if self.error else " (its model is still loading)"
            raise NotReady(f"endpoint {self.name!r} is not ready{why}", field="model")
        return served


def _warm(served: ServedModel, name: str) -> None:
    sample = warm_sample(served.signature)
    if sample is None:
        return
    try:
        served.predict(sample)
    except Invalid as exc:  # a model may refuse zeros (unknown category...): it is loaded
        log.warning("endpoint %s: warm-up prediction refused (%s); serving anyway", name, exc)


#: the collector's thresholds in a serving process (generation 0 collects after this many
#: allocations net of frees; Python's default is 700)
GC_THRESHOLDS = (20_000, 50, 100)


def settle_heap() -> None:
    """After models load (or a swap let one go): collect once, then freeze what survives
    (the models, the libraries) so the collector never walks it again, and collect less
    often. A serving process makes many short-lived objects per request and keeps few;
    without this a full collection walks every object of the loaded models while every
    request in flight waits (in ``bench/serving_hotpath.py`` at concurrency 32 the p99
    went from about 180 ms to about 40 ms). Each call unfreezes first, so the one full
    collection it makes frees a swapped-out model's reference cycles too: one pause per
    load or swap, none per request.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class ServingRuntime:
    """The endpoints of one serving process, loaded in a background thread.

    >>> runtime = ServingRuntime([EndpointSpec("churn", "models:/churn@champion")])
    >>> runtime.start(); runtime.wait_ready(60)   # doctest: +SKIP
    """

    def __init__(self, specs: Iterable[EndpointSpec], cache: ModelCache | None = None) -> None:
        specs = list(specs)
        names = [s.name for s in specs]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise Invalid(f"endpoint names must differ; {doubled} given twice", field="name")
        self.cache = cache or ModelCache()
        self._endpoints = {s.name: Endpoint(s) for s in specs}
        self._deployed: dict[str, _Deployed] = {}
        self._lock = threading.Lock()
        #: False while a deployment source has not made its first pass (not ready yet)
        self.synced = True
        #: after each load or swap, ``settle_heap()`` (a serving process's own runtime)
        self.settle_heap = False
        self._settled: frozenset[str] | None = None
        #: per (deployment, shadow arm): copies run, answers equal to the primary's, errors,
        #: copies dropped (the backlog was full); the ``Answerer`` runs the copies
        self.shadow_stats: dict[tuple[str, str], dict[str, int]] = {}

    @property
    def endpoints(self) -> list[Endpoint]:
        """The plain endpoints, then each deployment's default arm (as ``get`` gives it)."""
        return list(self._endpoints.values()) + [d.default for d in list(self._deployed.values())]

    @property
    def deployments(self) -> dict[str, Deployment]:
        """The stored deployments served, by name, at the revision being served."""
        return {n: d.deployment for n, d in list(self._deployed.items())}

    def deployment(self, name: str) -> Deployment | None:
        """The stored deployment served as ``name`` (None for a plain endpoint): one
        lookup, where ``deployments`` builds a dict."""
        deployed = self._deployed.get(name)
        return None if deployed is None else deployed.deployment

    @property
    def ready(self) -> bool:
        """Every endpoint (every arm of every deployment, standbys too) is loaded and warm."""
        arms = [e for d in list(self._deployed.values()) for e in d.arms.values()]
        return self.synced and all(e.ready for e in [*self._endpoints.values(), *arms])

    def get(self, name: str) -> Endpoint:
        """The endpoint called ``name`` (a deployment's: its primary, or first answering
        arm); ``NotFound`` naming those served."""
        found = self._endpoints.get(name)
        if found is not None:
            return found
        deployed = self._deployed.get(name)
        if deployed is not None:
            return deployed.default
        served = ", ".join(sorted([*self._endpoints, *self._deployed])) or "none"
        raise NotFound(f"no endpoint {name[:128]!r}; this server serves {served}", field="name")

    def arm_endpoints(self, name: str) -> dict[str, Endpoint]:
        """The endpoint of each arm of the deployment ``name`` (empty for a plain one)."""
        deployed = self._deployed.get(name)
        return {} if deployed is None else dict(deployed.arms)

    def choose(self, name: str, key: str | None = None) -> Choice:
        """The model that answers one request to ``name``: a plain endpoint's, or the arm a
        deployment's routing policy picks (sticky per ``key``), with its shadow arms.

        ``NotFound`` for an unknown name, ``NotReady`` (503) while the chosen arm loads.
        """
        deployed = self._deployed.get(name)
        if deployed is None:
            return Choice(self.get(name).model(), None)
        from loopstack.serving._policies import route

        d = deployed.deployment
        bandit = deployed.bandit() if d.policy == "bandit" and deployed.bandit else None
        picked = route(d, key=key, bandit=bandit)
        shadows = tuple(
            (a.name, served)
            for a in picked.shadows
            if (served := deployed.arms[a.name].served) is not None
        )
        return Choice(deployed.arms[picked.arm.name].model(), picked.arm.name, shadows, d.name)

    def set_deployment(
        self,
        deployment: Deployment,
        specs: Mapping[str, EndpointSpec],
        bandit: Callable[[], Mapping[str, ArmStats]] | None = None,
    ) -> dict[str, str]:
        """Serve ``deployment`` with one endpoint per arm (``specs`` by arm name): arms whose
        spec is unchanged keep their loaded model, new ones load and warm first, then the
        whole deployment is swapped at once, so the old arms answer until then.

        Returns ``{arm: why}`` for arms that failed to load; if an arm that answers failed,
        the old revision (when there is one) keeps serving.
        """
        current = self._deployed.get(deployment.name)
        arms: dict[str, Endpoint] = {}
        failed: dict[str, str] = {}
        for arm_name, spec in specs.items():
            old = None if current is None else current.arms.get(arm_name)
            old = old or (current.by_spec(spec) if current is not None else None)
            if old is not None and old.spec == spec and old.ready:
                arms[arm_name] = old
                continue
            fresh = Endpoint(spec)
            fresh.load(self.cache)
            if not fresh.ready:
                failed[arm_name] = fresh.error or "it did not load"
            arms[arm_name] = fresh
        answering = {a.name for a in deployment.arms if a.serves}
        if current is not None and any(a in failed for a in answering):
            log.warning(
                "deployment %s revision %s not served (arms failed: %s); revision %s still is",
                deployment.name,
                deployment.revision,
                failed,
                current.deployment.revision,
            )
            return failed
        with self._lock:
            self._deployed[deployment.name] = _Deployed(deployment, arms, bandit)
        self._forget_unused()
        return failed

    def drop_deployment(self, name: str) -> None:
        """Stop serving the deployment ``name`` (its arms' models go unless shared)."""
        with self._lock:
            self._deployed.pop(name, None)
        self._forget_unused()

    def shadow_stat(self, deployment: str, arm: str) -> dict[str, int]:
        """The counters of one shadow arm (``shadow_stats``), made on first use."""
        fresh = {"runs": 0, "agree": 0, "errors": 0, "dropped": 0}
        return self.shadow_stats.setdefault((deployment, arm), fresh)

    def load_all(self) -> None:
        """Load every endpoint still loading, in this thread."""
        for endpoint in self.endpoints:
            if endpoint.state == "loading":
                endpoint.load(self.cache)
        self._settle()

    def start(self) -> threading.Thread:
        """Load every endpoint in a background thread (readiness turns true when done)."""
        thread = threading.Thread(target=self.load_all, name="loopstack-load", daemon=True)
        thread.start()
        return thread

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every endpoint is ready or one failed (and the deployments had their
        first pass); whether all are ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {e.state for e in self._endpoints.values()}
            if "loading" not in states and self.synced:
                break
            time.sleep(0.05)
        return self.ready

    def apply(self, specs: Iterable[EndpointSpec]) -> dict[str, str]:
        """Serve ``specs`` from now on: a new or changed endpoint is loaded and warmed
        while the old one (if any) keeps answering, then swapped in; a removed one goes.

        Returns ``{name: why}`` for each changed endpoint whose new model failed to load
        (the old one, if it was ready, still answers).
        """
        wanted = {s.name: s for s in specs}
        ServingRuntime(wanted.values())  # the same checks as at start
        with self._lock:
            for name in list(self._endpoints):
                if name not in wanted:
                    del self._endpoints[name]
        failed: dict[str, str] = {}
        for name, spec in wanted.items():
            current = self._endpoints.get(name)
            if current is not None and current.spec == spec and current.state != "failed":
                continue
            fresh = Endpoint(spec)
            fresh.load(self.cache)
            if not fresh.ready:
                failed[name] = fresh.error or "it did not load"
            if fresh.ready or current is None or not current.ready:
                with self._lock:
                    self._endpoints[name] = fresh
        self._forget_unused()
        return failed

    def refresh(self) -> list[str]:
        """Re-resolve every endpoint's URI; reload (then swap) those whose alias now names
        another version. Returns the names of the endpoints that changed."""
        changed: list[str] = []
        for endpoint in list(self._endpoints.values()):  # a deployment's arms are pinned
            served = endpoint.served
            try:
                key, _ = endpoint.resolve()
            except LoopstackError as exc:
                log.warning("endpoint %s: cannot re-resolve: %s", endpoint.name, exc)
                continue
            if served is not None and served.key == key:
                continue
            fresh = Endpoint(endpoint.spec)
            fresh.load(self.cache)
            if fresh.ready:
                with self._lock:
                    self._endpoints[endpoint.name] = fresh
                changed.append(endpoint.name)
        if changed:
            self._forget_unused()
        return changed

    def _forget_unused(self) -> None:
        arms = [e for d in list(self._deployed.values()) for e in d.arms.values()]
        self.cache.keep(
            e.served.key for e in [*self._endpoints.values(), *arms] if e.served is not None
        )
        self._settle()

    def _settle(self) -> None:
        """``settle_heap()`` once the loaded models changed (a load, a swap, a model let
        go); not again for the same set (an arm that keeps failing to load, retried at
        every poll, costs no full collection)."""
        loaded = self.cache.keys()
        if self.settle_heap and loaded != self._settled:
            settle_heap()
            self._settled = loaded


@dataclass(frozen=True)
class Choice:
    """What answers one request: the model, the deployment arm (None for a plain
    endpoint) and the shadow arms that get a copy (arm name, model)."""

    served: ServedModel
    arm: str | None
    shadows: tuple[tuple[str, ServedModel], ...] = ()
    deployment_name: str | None = None


@dataclass
class _Deployed:
    """A deployment being served: its revision and one endpoint per arm."""

    deployment: Deployment
    arms: dict[str, Endpoint]
    bandit: Callable[[], Mapping[str, ArmStats]] | None = None

    @property
    def default(self) -> Endpoint:
        """The primary arm's endpoint, else the first that answers, else the first."""
        d = self.deployment
        pick = d.primary or next((a for a in d.arms if a.serves), None) or d.arms[0]
        return self.arms[pick.name]

    def by_spec(self, spec: EndpointSpec) -> Endpoint | None:
        """An arm already loaded with ``spec`` (a model that moved from arm to arm)."""
        return next((e for e in self.arms.values() if e.spec == spec and e.ready), None)
