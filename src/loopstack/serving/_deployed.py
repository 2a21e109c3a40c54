"""Stored deployments as the serving runtime's endpoints, kept in step by polling.

A ``DeploymentSource`` serves the named deployments of a project (or all of them):
each arm (standbys too: loaded and kept warm, never routed) becomes an endpoint on
``models:/<model>/<version>``, the version ``resolve_arm`` gives through the registry.
``poll`` asks the store for every revision (one small query) and reloads only the
deployments whose revision moved, through the runtime's load-then-swap: the old arms
answer until the new ones are warm. An arm that names an alias is re-resolved every
``alias_refresh_s`` (a registry query per such arm), so a moved alias is followed
between revisions too (on a production endpoint only to an approved version, as
``resolve_arm`` says). A bandit's learned state is read at most once per
``bandit_ttl_s`` per deployment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from loopstack.errors import LoopstackError, NotFound
from loopstack.serving._deployments import (
    ArmStats,
    Deployment,
    DeploymentStore,
    is_version_number,
)
from loopstack.serving._enrich_config import EnrichmentConfig
from loopstack.serving._resolve import resolve_arm
from loopstack.serving._runtime import EndpointSpec, ServingRuntime

if TYPE_CHECKING:
    from loopstack.registry import ModelStore

__all__ = ["DeploymentSource", "arm_specs"]

log = logging.getLogger("loopstack.serving")


def arm_specs(
    registry: ModelStore, deployment: Deployment, *, prefer_onnx: bool = False
) -> dict[str, EndpointSpec]:
    """One endpoint spec per arm of ``deployment``: ``models:/<model>/<version now>``,
    enriching as its ``options["enrichment"]`` says (every arm reads its own version's
    features)."""
    specs: dict[str, EndpointSpec] = {}
    found = deployment.options.get("enrichment")
    enrichment = None if found is None else EnrichmentConfig.parse(found)
    for arm in deployment.arms:
        version = resolve_arm(registry, deployment, arm)
        specs[arm.name] = EndpointSpec(
            deployment.name, f"models:/{arm.model}/{version.version}", prefer_onnx, enrichment
        )
    return specs


class DeploymentSource:
    """The deployments a serving process answers for, followed as they change.

    ``names`` are the deployments to serve; None serves every deployment of the
    store's project (new ones appear, deleted ones go).

    >>> source = DeploymentSource(ls.serving.deployments(), ["churn-api"])
    >>> source.poll(runtime)   # doctest: +SKIP
    """

    def __init__(
        self,
        store: DeploymentStore,
        names: Iterable[str] | None = None,
        *,
        registry: ModelStore | None = None,
        prefer_onnx: bool = False,
        bandit_ttl_s: float = 1.0,
        alias_refresh_s: float = 5.0,
    ) -> None:
        self.store = store
        self.names = None if names is None else list(dict.fromkeys(names))
        self._registry = registry
        self.prefer_onnx = prefer_onnx
        self.bandit_ttl_s = bandit_ttl_s
        self.alias_refresh_s = alias_refresh_s
        self._aliases_checked = time.monotonic()
        self._served: dict[str, int] = {}  # name -> revision being served
        self._bandit: dict[str, tuple[float, Mapping[str, ArmStats]]] = {}
        self._lock = threading.Lock()

    @property
    def registry(self) -> ModelStore:
        """The registry arms resolve through (the configured one unless given)."""
        if self._registry is None:
            from loopstack.registry import registry

            self._registry = registry()
        return self._registry

    def bandit_state(self, name: str) -> Mapping[str, ArmStats]:
        """The bandit's learned state, read from the store at most once per ``bandit_ttl_s``
        (the last state read, or none, when the store cannot answer)."""
        now = time.monotonic()
        cached = self._bandit.get(name)
        if cached is not None and now - cached[0] < self.bandit_ttl_s:
            return cached[1]
        try:
            state: Mapping[str, ArmStats] = self.store.bandit_state(name)
        except LoopstackError as exc:
            log.warning("deployment %s: cannot read the bandit state: %s", name, exc)
            state = cached[1] if cached is not None else {}
        self._bandit[name] = (now, state)
        return state

    def _bandit_of(self, name: str) -> Callable[[], Mapping[str, ArmStats]]:
        return lambda: self.bandit_state(name)

    def poll(self, runtime: ServingRuntime) -> list[str]:
        """Bring ``runtime`` in step with the store: (re)load each deployment whose
        revision changed, drop those gone. Returns the names that changed."""
        with self._lock:  # one pass at a time (the first load and the refresh loop)
            return self._poll(runtime)

    def _poll(self, runtime: ServingRuntime) -> list[str]:
        revisions = self.store.revisions()
        wanted = revisions if self.names is None else {n: revisions.get(n, 0) for n in self.names}
        changed: list[str] = []
        check_aliases = time.monotonic() - self._aliases_checked >= self.alias_refresh_s
        if check_aliases:
            self._aliases_checked = time.monotonic()
        for name in [n for n in self._served if n not in wanted or not wanted[n]]:
            runtime.drop_deployment(name)
            del self._served[name]
            changed.append(name)
        for name, revision in wanted.items():
            if not revision:
                if name not in self._served:
                    log.warning("deployment %s does not exist (yet); not served", name)
                continue
            if self._served.get(name) == revision:
                if check_aliases and self._alias_moved(runtime, name):
                    changed.append(name)
                continue
            try:
                deployment = self.store.get(name)
                specs = arm_specs(self.registry, deployment, prefer_onnx=self.prefer_onnx)
            except NotFound as exc:
                log.warning("deployment %s: %s", name, exc)
                continue
            except LoopstackError as exc:
                log.warning("deployment %s: cannot resolve its arms: %s", name, exc)
                continue
            failed = runtime.set_deployment(deployment, specs, bandit=self._bandit_of(name))
            if failed:  # not marked served: the next poll tries the arms that failed again
                log.warning("deployment %s: arms that did not load: %s", name, failed)
            elif runtime.deployments.get(name) is deployment:
                self._served[name] = deployment.revision
                changed.append(name)
        return changed

    def _alias_moved(self, runtime: ServingRuntime, name: str) -> bool:
        """Re-resolve the alias arms of the deployment served as ``name``; swap in (once
        warm) those now on another version. Whether any moved."""
        deployment = runtime.deployments.get(name)
        if deployment is None or all(is_version_number(a.ref) for a in deployment.arms):
            return False
        try:
            specs = arm_specs(self.registry, deployment, prefer_onnx=self.prefer_onnx)
        except LoopstackError as exc:
            log.warning("deployment %s: cannot re-resolve its aliases: %s", name, exc)
            return False
        loaded = {arm: e.spec for arm, e in runtime.arm_endpoints(name).items()}
        if specs == loaded:
            return False
        failed = runtime.set_deployment(deployment, specs, bandit=self._bandit_of(name))
        if failed:
            log.warning("deployment %s: arms that did not load: %s", name, failed)
        return not failed
