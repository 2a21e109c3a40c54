"""Feature enrichment: requests that carry entity keys, answered with the model's features.

An ``Enricher`` serves one model version. It knows the version's features from its
training set: the model version's tag ``loopstack.training_set`` (``name/version``,
recorded by ``log_model`` when the run took a feature-store training set as its
``training`` input; for older versions, the run's inputs are read instead), whose
dataset version's source names the feature references it was built from
(``feature_store:view:a,view:b,odfv:c``). The endpoint's configuration may name the
features itself (``features``). Each model input column (the signature's) is either one
of those features (``feature`` or ``view__feature``, as the training set named it) or a
value the request carries (an entity key, a request value of an on-demand view).

Per request: one batched online read for every row through
``FeatureStore.get_online_features`` (on-demand views run there, by the same
``OnDemandFeatureView.transform`` as in training), behind a timeout and a circuit
breaker; stale (older than the view's TTL or ``max_age_s``) and missing values are
handled as the mode says (see ``_enrich_config``); the model input is assembled in the
signature's column order.

>>> result = enrich(choice.served, [{"driver_id": 1001}])  # None: the endpoint does not enrich
>>> result.inputs, result.features, result.to_dict()["status"]
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import FeaturesUnavailable, Invalid, LoopstackError, NotFound, excerpt
from loopstack.serving._enrich_config import CircuitBreaker, EnrichmentConfig

if TYPE_CHECKING:
    from loopstack.features import FeatureStore
    from loopstack.registry import ModelVersion
    from loopstack.registry.flavors import Signature

__all__ = [
    "EnrichResult",
    "EnrichStats",
    "Enricher",
    "enrich",
    "training_features",
]

log = logging.getLogger("loopstack.serving")
_SOURCE_PREFIX = "feature_store:"
_READ_THREADS = 4  # reads in flight per endpoint; a hung store holds at most these


@dataclass
class EnrichResult:
    """One request enriched: the model input (signature order), the feature values read
    or defaulted (``{column: [value per row]}``, what a prediction log records), and
    what happened."""

    inputs: Any  # columns {name: values} in the signature's column order
    features: dict[str, list[Any]]
    status: str  # ok | degraded
    defaulted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    breaker: str = "closed"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What the response's ``enrichment`` says."""
        out: dict[str, Any] = {
            "status": self.status,
            "defaulted": self.defaulted,
            "stale": self.stale,
            "missing": self.missing,
            "breaker": self.breaker,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class EnrichStats:
    """Counters of one endpoint's enrichment (for ``/metrics``)."""

    requests: int = 0
    ok: int = 0
    degraded: int = 0
    failed_closed: int = 0
    store_errors: int = 0
    timeouts: int = 0
    short_circuited: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counters as a dict."""
        return dict(self.__dict__)


class _ReadThreads:
    """A few daemon threads that run store reads, so a caller can stop waiting on one.

    Daemon threads, unlike ``ThreadPoolExecutor``'s: a read hung on a dead socket must not
    keep a stopping server process alive.
    """

    def __init__(self, size: int) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name="loopstack-enrich", daemon=True)
            for _ in range(size)
        ]
        self._started = False
        self._lock = threading.Lock()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on a read thread; its future."""
        if not self._started:
            with self._lock:
                if not self._started:
                    for t in self._threads:
                        t.start()
                    self._started = True
        future: Future[Any] = Future()
        self._jobs.put((future, fn))
        return future

    def close(self) -> None:
        """Let idle threads end (a hung one ends with its read, or with the process)."""
        for _ in self._threads:
            self._jobs.put(None)


@dataclass(frozen=True)
class _Column:
    name: str  # the model's input column
    ref: str | None  # "view:feature", or None when the request carries the value
    online: str = ""  # the OnlineResponse column ("view__feature")


# -- which features a version was trained on ------------------------------------------------
def _training_set_of_version(version: ModelVersion) -> str | None:
    from loopstack.registry import TRAINING_SET_TAG, training_set_of

    tagged = version.tags.get(TRAINING_SET_TAG)
    if tagged:
        return tagged
    if not version.run_id:
        return None
    from loopstack.tracking import TrackingClient

    try:
        run = TrackingClient().get_run(version.run_id)
    except NotFound:
        return None
    return training_set_of(run)


def training_features(version: ModelVersion) -> tuple[list[str], str]:
    """(feature references, the training set ``name/version``) a model version was
    trained on; ``Invalid`` saying how to link them when the version names none."""
    found = _training_set_of_version(version)
    if found is None:
        raise Invalid(
            f"model version {version.name}/{version.version} names no training set from the "
            "feature store, so its endpoint cannot enrich requests: log the model in the run "
            "that built the training set (get_historical_features(..., register_as=NAME)), "
            "or name the features in the endpoint's enrichment config ('features': "
            "['view:feature', ...])",
            field="enrichment",
        )
    from loopstack.data import get_dataset

    name, _, number = found.rpartition("/")
    dataset = get_dataset(name, number)
    source = dataset.source_uri or ""
    if not source.startswith(_SOURCE_PREFIX):
        raise Invalid(
            f"the training set {found} of model version {version.name}/{version.version} "
            f"was not built by the feature store (its source is {source!r}); name the "
            "features in the endpoint's enrichment config ('features': [...])",
            field="enrichment",
        )
    return [r for r in source[len(_SOURCE_PREFIX) :].split(",") if r], found


def _map_columns(signature: Signature | None, refs: list[str], label: str) -> list[_Column]:
    from loopstack.registry.flavors import TensorSpec

    if signature is None or isinstance(signature.inputs, TensorSpec):
        raise Invalid(
            f"{label} has no column signature, so the features cannot be put in its input "
            "order; log the model with a DataFrame sample_input to enrich its requests",
            field="enrichment",
        )
    full = {ref.replace(":", "__", 1): ref for ref in refs}
    short: dict[str, str] = {}
    for r in refs:
        short.setdefault(r.split(":", 1)[1], r)
    columns = []
    for spec in signature.columns:
        ref: str | None = full.get(spec.name) or short.get(spec.name)
        online = "" if ref is None else ref.replace(":", "__", 1)
        columns.append(_Column(spec.name, ref, online))
    if not any(c.ref for c in columns):
        raise Invalid(
            f"none of the input columns of {label} "
            f"({', '.join(c.name for c in columns)}) is one of its features "
            f"({', '.join(refs) or 'none'})",
            field="enrichment",
        )
    return columns


# -- the enricher ---------------------------------------------------------------------------
class Enricher:
    """Enriches the requests of one served model version (see the module docstring).

    Build it with ``Enricher.for_version`` (the features from the version's training
    set) or directly with the feature references.
    """

    def __init__(
        self,
        config: EnrichmentConfig,
        refs: list[str],
        signature: Signature | None,
        *,
        label: str = "the model",
        store: FeatureStore | None = None,
        training_set: str | None = None,
    ) -> None:
        self.config = config
        self.label = label
        self.training_set = training_set
        self.columns = _map_columns(signature, list(refs), label)
        self.refs = list(dict.fromkeys(c.ref for c in self.columns if c.ref))
        if store is None:
            from loopstack.features import FeatureStore

            store = FeatureStore(online_url=config.online_url)
        self.store = store
        self.online_url = store.server or store.online_url
        self.entity_keys, self.request_fields = self._keys()
        self.defaults = self._defaults()
        self.breaker = CircuitBreaker(config.breaker)
        self.stats = EnrichStats()
        self._stats_lock = threading.Lock()
        self._pool = _ReadThreads(_READ_THREADS)

    @classmethod
    def for_version(
        cls,
        config: EnrichmentConfig,
        version: ModelVersion | None,
        signature: Signature | None,
        *,
        store: FeatureStore | None = None,
    ) -> Enricher:
        """The enricher of ``version``: the configured features, else its training set's."""
        label = "a run's model" if version is None else f"model version {version.uri}"
        training_set = None
        if config.features:
            refs = list(config.features)
        elif version is None:
            raise Invalid(
                "a runs:/ model has no registered training set; name the features in the "
                "enrichment config ('features': ['view:feature', ...])",
                field="enrichment",
            )
        else:
            refs, training_set = training_features(version)
        return cls(config, refs, signature, label=label, store=store, training_set=training_set)

    def _keys(self) -> tuple[list[str], list[str]]:
        """The join keys the feature views need, and the request values the request
        carries (on-demand views' request sources, model columns that are no feature)."""
        from loopstack.features import FeatureView, OnDemandFeatureView

        keys: list[str] = []
        request: list[str] = []
        for view_name in dict.fromkeys(r.split(":", 1)[0] for r in self.refs):
            view = self.store.get_feature_view(view_name)
            views = view.source_views if isinstance(view, OnDemandFeatureView) else [view]
            for v in views:
                if isinstance(v, FeatureView):
                    keys.extend(k for k in v.join_keys if k not in keys)
            if isinstance(view, OnDemandFeatureView):
                for source in view.request_sources:
                    request.extend(f.name for f in source.schema if f.name not in request)
        for c in self.columns:
            if c.ref is None and c.name not in keys and c.name not in request:
                request.append(c.name)
        return keys, request

    def _defaults(self) -> dict[str, Any]:
        """Declared defaults by model column (given by column or by ``view:feature``)."""
        by_ref = {c.ref: c.name for c in self.columns if c.ref}
        features = {c.name for c in self.columns if c.ref}
        out: dict[str, Any] = {}
        unknown = []
        for key, value in self.config.defaults:
            column = key if key in features else by_ref.get(key)
            if column is None:
                if not self._other_feature(key):
                    unknown.append(key)
            else:
                out[column] = value
        if unknown:
            raise Invalid(
                f"enrichment defaults name {', '.join(map(repr, unknown))}, which are not "
                f"features of {self.label}; its features are "
                f"{', '.join(f'{n} ({r})' for r, n in by_ref.items())}",
                field="defaults",
            )
        return out

    def _other_feature(self, key: str) -> bool:
        """Is ``key`` a ``view:feature`` of the feature store that this version does not
        read? An endpoint's defaults serve every arm, and arms may read other features."""
        view, _, feature = key.partition(":")
        if not feature:
            return False
        try:
            found = self.store.get_feature_view(view)
        except LoopstackError:
            return False
        return feature in {f.name for f in getattr(found, "schema", [])}

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # -- per request ------------------------------------------------------------------------
    def enrich(self, records: Any) -> EnrichResult:
        """The model input for ``records`` (a list of row objects, or columns), with the
        features read (or defaulted); ``FeaturesUnavailable`` (503) when failing closed."""
        rows = self._rows(records)
        self._count("requests")
        values, stale, missing, reason = self._read(rows)
        defaulted: list[str] = []
        n = len(rows)
        if reason is not None:  # the store failed, or the breaker is open
            if self.config.mode == "fail_closed":
                self._fail(f"{reason}; the endpoint fails closed", stale={}, missing={})
            lacking = [c.name for c in self.columns if c.ref and c.name not in self.defaults]
            if lacking:
                self._fail(
                    f"{reason}; features {', '.join(lacking)} have no declared default",
                    stale={},
                    missing={},
                )
            values = {c.name: [self.defaults[c.name]] * n for c in self.columns if c.ref}
            defaulted = [c.name for c in self.columns if c.ref]
        elif stale or missing:
            bad = {
                name: sorted({*stale.get(name, []), *missing.get(name, [])})
                for name in [*stale, *missing]
            }
            if self.config.mode == "fail_closed":
                why = self._why(stale, missing)
                self._fail(f"{why}; the endpoint fails closed", stale, missing)
            lacking = [name for name in bad if name not in self.defaults]
            if lacking:
                self._fail(
                    self._why(
                        {k: v for k, v in stale.items() if k in lacking},
                        {k: v for k, v in missing.items() if k in lacking},
                    )
                    + " and has no declared default",
                    stale,
                    missing,
                )
            for name, where in bad.items():
                column = values[name]
                for i in where:
                    column[i] = self.defaults[name]
            defaulted = [c.name for c in self.columns if c.name in bad]
        status = "degraded" if defaulted else "ok"
        self._count(status)
        return EnrichResult(
            inputs=self._frame(rows, values),
            features=values,
            status=status,
            defaulted=defaulted,
            stale=[c.name for c in self.columns if c.name in stale],
            missing=[c.name for c in self.columns if c.name in missing],
            breaker=self.breaker.state,
            reason=reason,
        )

    def _why(self, stale: Mapping[str, list[int]], missing: Mapping[str, list[int]]) -> str:
        parts = []
        for name, where in stale.items():
            limit = f", or older than {self.config.max_age_s:g}s" if self.config.max_age_s else ""
            parts.append(
                f"feature {name} is stale for row(s) {where[:10]} (older than its view's TTL"
                f"{limit})"
            )
        for name, where in missing.items():
            parts.append(f"feature {name} has no online value for row(s) {where[:10]}")
        return "; ".join(parts)

    def _fail(
        self, message: str, stale: Mapping[str, list[int]], missing: Mapping[str, list[int]]
    ) -> None:
        self._count("failed_closed")
        raise FeaturesUnavailable(
            message,
            field="enrichment",
            enrichment={
                "status": "fail_closed",
                "stale": sorted(stale),
                "missing": sorted(missing),
                "breaker": self.breaker.state,
            },
        )

    def _rows(self, records: Any) -> list[dict[str, Any]]:
        if isinstance(records, list) and records and all(_is_tensor(t) for t in records):
            # OIP inputs: one tensor per key column, shape [N] or [N, 1]
            records = {t.name: _plain_column(t.array) for t in records}
        if isinstance(records, Mapping):  # columns: {"driver_id": [1, 2]}
            n = len(next(iter(records.values()), []))
            rows = [{k: v[i] for k, v in records.items()} for i in range(n)]
        elif isinstance(records, list) and all(isinstance(r, Mapping) for r in records):
            rows = [dict(r) for r in records]
        else:
            raise Invalid(
                f"{self.label} is served with its features from the feature store: send "
                f"'records' or 'columns' carrying {', '.join(self.entity_keys)}; got "
                f"{type(records).__name__}",
                field="records",
            )
        needed = self.entity_keys + self.request_fields
        for i, row in enumerate(rows):
            lacking = [k for k in needed if k not in row]
            if lacking:
                also = f" and the request values {self.request_fields}" * bool(self.request_fields)
                raise Invalid(
                    f"row {i} has no {', '.join(map(repr, lacking))}: each row carries the "
                    f"entity keys {self.entity_keys}{also}; it has {excerpt(sorted(row))}",
                    field=lacking[0],
                )
        return rows

    def _read(
        self, rows: list[dict[str, Any]]
    ) -> tuple[dict[str, list[Any]], dict[str, list[int]], dict[str, list[int]], str | None]:
        """(values by column, stale rows by column, missing rows by column, why the store
        could not be read or None)."""
        where = f"the online store {self.online_url}"
        if not self.breaker.acquire():
            self._count("short_circuited")
            return {}, {}, {}, f"{where} is failing: its circuit breaker is open"
        future = self._pool.submit(
            lambda: self.store.get_online_features(rows, self.refs, full_feature_names=True)
        )
        try:
            response = future.result(timeout=self.config.timeout_s)
        except FutureTimeout:
            future.cancel()
            self.breaker.failure()
            self._count("timeouts")
            return {}, {}, {}, f"{where} did not answer within {self.config.timeout_s:g}s"
        except (Invalid, NotFound):
            self.breaker.success()  # the store answered: the request or the definitions are wrong
            raise
        except Exception as exc:  # noqa: BLE001 - any backend's failure is the store's
            self.breaker.failure()
            self._count("store_errors")
            text = (
                exc.message if isinstance(exc, LoopstackError) else f"{type(exc).__name__}: {exc}"
            )
            log.warning("%s: %s failed: %s", self.label, where, text)
            return {}, {}, {}, f"{where} failed ({text[:200]})"
        self.breaker.success()
        now = time.time()
        max_age = self.config.max_age_s
        values: dict[str, list[Any]] = {}
        stale: dict[str, list[int]] = {}
        missing: dict[str, list[int]] = {}
        for c in self.columns:
            if c.ref is None:
                continue
            values[c.name] = list(response.values[c.online])
            stamps = response.event_timestamps[c.online]
            flags = response.stale[c.online]
            old = [i for i, flag in enumerate(flags) if flag]
            if max_age is not None:
                aged = (i for i, t in enumerate(stamps) if t and now - t.timestamp() > max_age)
                old = sorted({*old, *aged})
            gone = [i for i, ts in enumerate(stamps) if ts is None]
            if old:
                stale[c.name] = old
            if gone:
                missing[c.name] = gone
        return values, stale, missing, None

    def _frame(self, rows: list[dict[str, Any]], values: dict[str, list[Any]]) -> Any:
        """The model input as columns in the signature's order, plain Python values (so a
        float signature takes the serving path's array fast path, no frame per request)."""
        return {
            c.name: [v.item() if isinstance(v, np.generic) else v for v in values[c.name]]
            if c.ref
            else [r[c.name] for r in rows]
            for c in self.columns
        }

    def describe(self) -> dict[str, Any]:
        """Mode, features, breaker and counters: what ``GET /endpoints/{name}`` shows."""
        return {
            "mode": self.config.mode,
            "online_store": self.online_url,
            "training_set": self.training_set,
            "features": {c.name: c.ref for c in self.columns if c.ref},
            "entity_keys": self.entity_keys,
            "request_fields": self.request_fields,
            "defaults": self.defaults,
            "breaker": self.breaker.to_dict(),
            "stats": self.stats.to_dict(),
        }

    def close(self) -> None:
        """Stop the read threads (a hung read is abandoned, not waited for)."""
        self._pool.close()


def enrich(served: Any, records: Any) -> EnrichResult | None:
    """The request path's one call: ``records`` enriched for ``served`` (a
    ``ServedModel``), or None when its endpoint does not enrich.

    >>> result = enrich(choice.served, doc["records"])
    >>> inputs = result.inputs if result is not None else doc["records"]
    """
    enricher: Enricher | None = getattr(served, "enricher", None)
    if enricher is None:
        return None
    return enricher.enrich(records)


def _is_tensor(value: Any) -> bool:
    from loopstack.serving._oip import InputTensor

    return isinstance(value, InputTensor)


def _plain_column(array: np.ndarray) -> list[Any]:
    """One OIP key tensor's values as a column: ``[N]`` or ``[N, 1]``; ``Invalid`` else."""
    values = np.asarray(array)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise Invalid(
            f"an entity-key tensor has shape [N] or [N, 1]; got {list(values.shape)}",
            field="inputs",
        )
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
