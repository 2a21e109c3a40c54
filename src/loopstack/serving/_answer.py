"""The one entry point of every serving protocol: ``Answerer.predict``.

REST (``/endpoints/{name}/predict``), OIP v2 REST (``/v2/models/{name}/infer``) and
OIP gRPC all call ``await answerer.predict(name, inputs, request_id=...)`` and render
the ``Answer``; nothing here knows HTTP. One call:

1. picks the model: a plain endpoint's, or the arm a deployment's policy routes to
   (sticky per ``routing_key``), or the version asked for by number;
2. checks the request's input against that model's signature *before* it joins a
   batch (``ModelCall.prepare``), so a bad request gets its own ``Invalid`` (400/422)
   and never fails another;
3. submits it to the model's batcher: one ``Batcher`` per served model and settings
   (``ServedModel.key``: endpoints and arms on one version share it). A request that
   finds no call running goes at once (a lone request waits for nothing); requests
   that arrive while a call runs form the next batch, up to ``max_batch_size``,
   lingering at most ``max_latency_ms``. The model runs in a worker thread, so the
   event loop keeps accepting. If a batched call fails, each of its requests is tried
   alone, so only the one that broke it fails. Beyond ``max_queue`` waiting requests a
   request is refused at once with ``Overloaded`` (503, ``Retry-After``);
4. records the prediction in the ``PredictionLog`` (a tuple appended to a buffer; the
   flush thread serializes and writes; a request that fails once its model is chosen
   goes to the log's ``prediction_errors`` stream), counts it in ``ServingMetrics``, remembers
   which arm answered the request id (a bounded map, for feedback), and hands copies to
   the shadow arms after the answer: their outputs are logged (``shadow`` true) and
   compared with the primary's (agreement of labels, mean absolute score difference).

A crash loses at most the prediction-log rows of the last flush interval (see
``PredictionLog``). ``feedback`` records labels and rewards and feeds a bandit
deployment's reward to the arm that answered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopstack.errors import Invalid, LoopstackError, NotFound, NotReady, Overloaded
from loopstack.serving._batch_settings import BatchSettings
from loopstack.serving._batcher import Batcher
from loopstack.serving._feedback import Feedback
from loopstack.serving._model_call import ModelCall, Prepared
from loopstack.serving._runtime import Choice, ServedModel, ServingRuntime

if TYPE_CHECKING:
    from loopstack.serving._deployed import DeploymentSource
    from loopstack.serving._deployments import Deployment
    from loopstack.serving._enrich import EnrichResult
    from loopstack.serving._metrics import ServingMetrics
    from loopstack.serving._prediction_log import PredictionLog

__all__ = ["Answer", "Answerer"]

log = logging.getLogger("loopstack.serving")

#: shadow copies in flight beyond which a new one is dropped (and counted)
SHADOW_BACKLOG = 256
#: request ids whose answering arm is remembered for feedback (oldest forgotten first)
RECENT_REQUESTS = 50_000


@dataclass(frozen=True)
class Answer:
    """One prediction: who answered (model, deployment arm), the outputs, how long it took."""

    request_id: str
    endpoint: str
    served: ServedModel
    arm: str | None
    outputs: dict[str, np.ndarray]
    latency_ms: float
    #: what feature enrichment did (None: the endpoint does not enrich)
    enrichment: EnrichResult | None = None

    @property
    def model_version(self) -> str | None:
        """The answering version's number as text (None for a ``runs:/`` model)."""
        return self.served.version_label


@dataclass
class _Lane:
    """One served model's batcher and model call."""

    call: ModelCall
    batcher: Batcher[Prepared, Any]
    label: str  # the model, for metrics: name/version or the URI


@dataclass
class _ShadowStats:
    rows: int = 0
    agree_rows: int = 0
    score_rows: int = 0
    score_diff_sum: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class Answerer:
    """Predictions for every protocol, batched, logged and counted (see the module doc).

    >>> answerer = Answerer(runtime, prediction_log=plog, metrics=metrics)   # doctest: +SKIP
    >>> answer = await answerer.predict("churn", records, request_id="r1")    # doctest: +SKIP
    """

    def __init__(
        self,
        runtime: ServingRuntime,
        *,
        settings: BatchSettings | None = None,
        prediction_log: PredictionLog | None = None,
        metrics: ServingMetrics | None = None,
        deployments: DeploymentSource | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or BatchSettings()
        self.prediction_log = prediction_log
        self.metrics = metrics
        self.deployments = deployments
        self._lanes: dict[tuple[str, BatchSettings], _Lane] = {}
        self._setup: dict[tuple[str, BatchSettings], asyncio.Future[_Lane]] = {}
        self._recent: collections.OrderedDict[str, tuple[str, str | None]] = (
            collections.OrderedDict()
        )
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._shadow_scores: dict[tuple[str, str], _ShadowStats] = {}
        self._log_dropped_seen = 0
        self._settings: dict[str, tuple[Deployment, BatchSettings]] = {}

    # -- the entry point ----------------------------------------------------------------
    async def predict(
        self,
        name: str,
        inputs: Any,
        *,
        request_id: str,
        routing_key: str | None = None,
        version: str | None = None,
        features: Any = None,
    ) -> Answer:
        """Answer one request to the endpoint ``name``.

        ``inputs`` is what the model takes (records, columns, an array, a DataFrame) or
        a list of OIP ``InputTensor``; ``version`` asks for the version served by number
        (another is ``NotFound``); ``features`` (enriched features) are logged beside
        the inputs. An endpoint that enriches (``ServedModel.enricher``) first reads
        the model's features for the entity keys ``inputs`` carry (off the event loop),
        and logs those. Errors: ``NotFound``, ``NotReady`` (loading), ``Invalid`` (this
        request's input), ``Overloaded`` (the queue is full), ``FeaturesUnavailable``
        (enrichment failed closed).
        """
        started = time.perf_counter()
        choice = self._choose(name, routing_key, version)
        served = choice.served
        enriched, given = None, inputs  # the log keeps what the caller sent
        try:
            if served.enricher is not None:  # entity keys in, the model's features out
                enriched = await asyncio.to_thread(served.enricher.enrich, inputs)
                inputs, features = enriched.inputs, enriched.features
            lane = await self._lane(served, self.settings_for(name))
            prepared = _prepare(lane.call, inputs)
            result = await lane.batcher.submit(prepared)
            if isinstance(result, Exception):
                raise _translated(result, served)
        except LoopstackError as exc:
            if self.metrics is not None:
                self.metrics.error(name, served.version_label, choice.arm, exc.status_code)
            if self.prediction_log is not None:  # the live error charts read it back
                self.prediction_log.record_error(
                    request_id,
                    name,
                    served.version_label or served.model_uri,
                    exc.status_code,
                    str(exc),
                    arm=choice.arm,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        if self.metrics is not None:
            requests, latency = self.metrics.answer(name, served.version_label, choice.arm)
            requests.inc()
            latency.observe(latency_ms / 1000)
        plog = self.prediction_log
        if plog is not None:
            kept = plog.record(
                request_id,
                name,
                served.version_label or served.model_uri,
                result,
                inputs=_loggable(given),
                features=features,
                arm=choice.arm,
                latency_ms=latency_ms,
            )
            if not kept:
                self._count_log_drops()
        self._remember(request_id, name, choice.arm)
        if choice.shadows:
            self._send_shadows(choice, name, request_id, inputs, (lane.call, prepared), result)
        return Answer(request_id, name, served, choice.arm, result, latency_ms, enriched)

    async def check(self, name: str, inputs: Any, *, routing_key: str | None = None) -> None:
        """Raise the ``Invalid`` that ``predict`` would for ``inputs`` (columns the
        model's signature misses, values of the wrong type), without scoring them: what
        an async job's route checks before it queues. An endpoint that is still loading,
        or that enriches (its input is entity keys), is not checked here."""
        try:
            served = self._choose(name, routing_key, None).served
        except NotReady:
            return
        if served.enricher is not None:
            return
        lane = await self._lane(served, self.settings_for(name))
        _prepare(lane.call, inputs)

    def _choose(self, name: str, key: str | None, version: str | None) -> Choice:
        if version is None:
            return self.runtime.choose(name, key)
        served = self.runtime.get(name).model()
        if version != served.version_label:
            raise NotFound(
                f"model {name!r} serves version "
                f"{served.version_label or '(none: a run model)'}; got version {version[:40]!r}",
                field="version",
            )
        return Choice(served, None)

    def settings_for(self, name: str) -> BatchSettings:
        """The batch settings of the endpoint ``name``: the server's, overridden by the
        options its stored deployment names."""
        deployment = self.runtime.deployment(name)
        if deployment is None or not deployment.options:
            return self.settings
        cached = self._settings.get(name)
        if cached is not None and cached[0] is deployment:
            return cached[1]
        try:
            chosen = self.settings.with_options(deployment.options)
        except Invalid as exc:  # stored before the options were checked: the flags hold
            log.warning("deployment %s: batch options ignored: %s", name, exc)
            chosen = self.settings
        self._settings[name] = (deployment, chosen)
        return chosen

    async def _lane(self, served: ServedModel, settings: BatchSettings) -> _Lane:
        key = (served.key, settings)
        lane = self._lanes.get(key)
        if lane is not None and lane.call.served is served:
            return lane
        pending = self._setup.get(key)
        if pending is None:  # one probe per model, however many requests wait for it
            pending = asyncio.get_running_loop().create_future()
            self._setup[key] = pending
            try:
                call = await asyncio.to_thread(ModelCall, served)
            except BaseException as exc:
                del self._setup[key]
                pending.set_exception(exc)
                pending.exception()  # retrieved: the waiters get it, no warning
                raise
            lane = self._new_lane(call, settings)
            self._forget_unused_lanes()
            self._lanes[key] = lane
            del self._setup[key]
            pending.set_result(lane)
            return lane
        return await asyncio.shield(pending)

    def _new_lane(self, call: ModelCall, settings: BatchSettings) -> _Lane:
        served = call.served
        version = served.version
        label = f"{version.name}/{version.version}" if version is not None else served.model_uri
        histogram = gauge = None
        if self.metrics is not None:
            histogram = self.metrics.batch_size.labels(label)
            gauge = self.metrics.queue_depth.labels(label)
        batcher: Batcher[Prepared, Any] = Batcher(
            call.run,
            max_batch_size=settings.max_batch_size,
            max_latency_ms=settings.max_latency_ms,
            max_queue=settings.max_queue,
            batch_size_histogram=histogram,
            queue_depth_gauge=gauge,
            dispatch_when_idle=True,
        )
        return _Lane(call, batcher, label)

    def _forget_unused_lanes(self) -> None:
        """Drop the lanes of models no endpoint serves any more (after a swap), so an old
        version is not kept alive by its batcher."""
        live = {e.served.key for e in self.runtime.endpoints if e.served is not None}
        for name in list(self.runtime.deployments):
            live |= {e.served.key for e in self.runtime.arm_endpoints(name).values() if e.served}
        for key in [k for k, lane in self._lanes.items() if k[0] not in live]:
            lane = self._lanes.pop(key)
            if not lane.batcher.stats.queue_depth:
                asyncio.get_running_loop().create_task(lane.batcher.close())

    @property
    def batchers(self) -> dict[str, Batcher[Prepared, Any]]:
        """Each model's batcher now (by model label), to read its ``stats``."""
        return {lane.label: lane.batcher for lane in self._lanes.values()}

    # -- shadows ------------------------------------------------------------------------
    def _send_shadows(
        self,
        choice: Choice,
        name: str,
        request_id: str,
        inputs: Any,
        prepared: tuple[ModelCall, Prepared],
        primary: dict[str, np.ndarray],
    ) -> None:
        loop = asyncio.get_running_loop()
        for arm, served in choice.shadows:
            stats = self.runtime.shadow_stat(name, arm)
            if len(self._shadow_tasks) >= SHADOW_BACKLOG:
                stats["dropped"] += 1
                self._shadow_failed(name, served, arm, "dropped")
                continue
            task = loop.create_task(
                self._shadow(name, arm, served, request_id, inputs, prepared, primary)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        name: str,
        arm: str,
        served: ServedModel,
        request_id: str,
        inputs: Any,
        prepared: tuple[ModelCall, Prepared],
        primary: dict[str, np.ndarray],
    ) -> None:
        stats = self.runtime.shadow_stat(name, arm)
        started = time.perf_counter()
        try:
            lane = await self._lane(served, self.settings_for(name))
            # the primary's checked input serves a shadow of the same signature as it is
            primary_call, checked = prepared
            same = primary_call.served.signature == served.signature
            mine = checked if same else _prepare(lane.call, inputs)
            got = await lane.batcher.submit(mine)
            if isinstance(got, Exception):
                raise got
        except Overloaded:
            stats["dropped"] += 1
            self._shadow_failed(name, served, arm, "dropped")
            return
        except Exception as exc:  # noqa: BLE001 - a shadow's failure never reaches a caller
            stats["errors"] += 1
            self._shadow_failed(name, served, arm, "error")
            log.debug("shadow arm %s of %s failed: %s", arm, name, exc)
            if self.prediction_log is not None:
                self.prediction_log.record_error(
                    request_id,
                    name,
                    served.version_label or served.model_uri,
                    getattr(exc, "status_code", 500),
                    f"{type(exc).__name__}: {exc}",
                    arm=arm,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    shadow=True,
                )
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self._compare(name, arm, served, primary, got)
        if self.prediction_log is not None and not self.prediction_log.record(
            request_id,
            name,
            served.version_label or served.model_uri,
            got,
            inputs=_loggable(inputs),
            arm=arm,
            latency_ms=latency_ms,
            shadow=True,
        ):
            self._count_log_drops()

    def _compare(
        self,
        name: str,
        arm: str,
        served: ServedModel,
        primary: dict[str, np.ndarray],
        shadow: dict[str, np.ndarray],
    ) -> None:
        stats = self.runtime.shadow_stat(name, arm)
        ours, theirs = np.asarray(primary["predict"]), np.asarray(shadow["predict"])
        rows = len(ours)
        equal = ours == theirs if ours.shape == theirs.shape else np.zeros(rows, bool)
        if equal.ndim > 1:
            equal = equal.reshape(rows, -1).all(axis=1)
        agree = int(np.count_nonzero(equal))
        diff = _score_diff(primary, shadow)
        stats["runs"] += 1
        stats["agree"] += int(agree == rows)
        scores = self._shadow_scores.setdefault((name, arm), _ShadowStats())
        scores.rows += rows
        scores.agree_rows += agree
        if diff is not None:
            scores.score_rows += rows
            scores.score_diff_sum += float(diff.sum())
        if self.metrics is not None:
            labels = (name, served.version_label or "", arm)
            self.metrics.shadow_rows.labels(*labels).inc(rows)
            self.metrics.shadow_agreements.labels(*labels).inc(agree)
            if diff is not None:
                self.metrics.shadow_score_diff.labels(*labels).inc(float(diff.sum()))

    def _shadow_failed(self, name: str, served: ServedModel, arm: str, reason: str) -> None:
        if self.metrics is not None:
            labels = (name, served.version_label or "", arm, reason)
            self.metrics.shadow_failures.labels(*labels).inc()

    def shadow_report(self, name: str, arm: str) -> dict[str, Any]:
        """How the shadow ``arm`` of ``name`` compares with the primary so far, in this
        process: rows compared, agreement rate, mean score difference, copies failed
        and dropped."""
        stats = self.runtime.shadow_stats.get((name, arm), {})
        scores = self._shadow_scores.get((name, arm), _ShadowStats())
        return {
            "copies": stats.get("runs", 0),
            "compared_rows": scores.rows,
            "agreement": scores.agree_rows / scores.rows if scores.rows else None,
            "score_diff": scores.score_diff_sum / scores.score_rows if scores.score_rows else None,
            "errors": stats.get("errors", 0),
            "dropped": stats.get("dropped", 0),
        }

    # -- feedback -----------------------------------------------------------------------
    def _remember(self, request_id: str, name: str, arm: str | None) -> None:
        recent = self._recent
        recent[request_id] = (name, arm)
        if len(recent) > RECENT_REQUESTS:
            recent.popitem(last=False)

    def feedback(self, name: str, items: Iterable[Feedback]) -> list[dict[str, Any]]:
        """Record each item in the prediction log; a reward on a bandit deployment also
        goes to the bandit's stored state, for the arm that answered the request (the
        item's ``arm``, else the arm remembered for its request id, else the one the
        prediction log recorded). Blocking (store I/O): call it from a worker thread.

        Returns one result per item: ``{"request_id", "logged", "reward_attributed",
        "arm", "why"?}``.
        """
        self.runtime.get(name)  # NotFound for an endpoint this server does not serve
        deployment = self.runtime.deployment(name)
        bandit = deployment is not None and deployment.policy == "bandit"
        results: list[dict[str, Any]] = []
        for item in items:
            logged = False
            if self.prediction_log is not None:
                logged = self.prediction_log.record_feedback(
                    item.request_id, label=item.label, reward=item.reward
                )
            result: dict[str, Any] = {
                "request_id": item.request_id,
                "logged": logged,
                "reward_attributed": False,
                "arm": item.arm,
            }
            if self.prediction_log is None:
                result["why_not_logged"] = "the prediction log is off (--no-prediction-log)"
            if item.reward is not None:
                if not bandit:
                    result["why"] = f"endpoint {name!r} is not a bandit deployment"
                else:
                    arm = item.arm or self._arm_of(name, item.request_id)
                    result["arm"] = arm
                    if arm is None:
                        result["why"] = (
                            f"no arm is known for request {item.request_id!r} (give 'arm')"
                        )
                    else:
                        self._reward(name, arm, item.reward)
                        result["reward_attributed"] = True
            results.append(result)
        return results

    def _arm_of(self, name: str, request_id: str) -> str | None:
        found = self._recent.get(request_id)
        if found is not None and found[0] == name:
            return found[1]
        if self.prediction_log is None:
            return None
        import pyarrow.compute as pc

        try:
            table = self.prediction_log.read_predictions(name)
        except LoopstackError as exc:
            log.warning("feedback: cannot read the prediction log: %s", exc)
            return None
        mask = pc.and_(
            pc.equal(table["request_id"], request_id), pc.invert(table["shadow"].fill_null(False))
        )
        arms = table.filter(mask)["arm"].to_pylist()
        return arms[-1] if arms else None

    def _reward(self, name: str, arm: str, reward: float) -> None:
        if self.deployments is not None:
            store = self.deployments.store
        else:
            from loopstack.serving._client import deployments

            store = deployments()
        store.record_reward(name, arm, reward)

    # -- upkeep -------------------------------------------------------------------------
    def _count_log_drops(self) -> None:
        plog = self.prediction_log
        if plog is None or self.metrics is None:
            return
        dropped = plog.stats.dropped
        if dropped > self._log_dropped_seen:
            self.metrics.log_dropped.inc(dropped - self._log_dropped_seen)
            self._log_dropped_seen = dropped

    def on_flush(self, stream: str, rows: int) -> None:
        """The prediction log's flush hook: bring the dropped-rows counter up to date."""
        self._count_log_drops()

    async def drain_shadows(self) -> None:
        """Wait for the shadow copies under way (their rows are then in the log's buffer)."""
        if self._shadow_tasks:
            await asyncio.gather(*self._shadow_tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Run what waits in every batcher, then flush and close the prediction log."""
        for lane in list(self._lanes.values()):
            await lane.batcher.close()
        if self._shadow_tasks:
            await asyncio.gather(*self._shadow_tasks, return_exceptions=True)
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.close, 30)


def _prepare(call: ModelCall, inputs: Any) -> Prepared:
    from loopstack.serving._oip import InputTensor

    if isinstance(inputs, list) and inputs and isinstance(inputs[0], InputTensor):
        return call.prepare_tensors(inputs)
    return call.prepare(inputs)


def _loggable(inputs: Any) -> Any:
    """What the log writes for the inputs: OIP tensors as ``{name: values}``."""
    from loopstack.serving._oip import InputTensor

    if isinstance(inputs, list) and inputs and isinstance(inputs[0], InputTensor):
        return {t.name: t.array for t in inputs}
    return inputs


def _translated(exc: Exception, served: ServedModel) -> LoopstackError:
    """A model's own exception as the ``Invalid`` a caller gets (loopstack's pass)."""
    if isinstance(exc, LoopstackError):
        return exc
    error = Invalid(
        f"the {served.model.flavor} model failed on this input ({type(exc).__name__}: {exc})",
        field="inputs",
    )
    error.__cause__ = exc
    return error


def _score_diff(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Per row, the mean absolute difference of the probabilities (or numeric values)."""
    for name in ("predict_proba", "predict"):
        if name in a and name in b:
            x, y = np.asarray(a[name]), np.asarray(b[name])
            if x.shape != y.shape or x.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
                continue
            if name == "predict" and "predict_proba" in a:
                return None  # labels of a classifier: no score to compare
            diff = np.abs(x.astype(float) - y.astype(float))
            return diff.reshape(len(diff), -1).mean(axis=1)
    return None
