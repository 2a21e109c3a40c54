"""``predict_batch``: score Parquet input into a Parquet output, chunk by chunk.

Each finished chunk is a part file in a staging directory beside the output
(``<output>.staging/``), named by its chunk id, with a ``manifest.json`` that names the
job (model package, columns, chunk size) and each input file's fingerprint. A rerun of
the same job skips every chunk whose part file is there (``resume=True``); the parts are
appended in chunk order, as they finish, to a temporary file (``_commit``) that is
renamed onto the output at the end, and the staging directory is removed. So an output
never holds a chunk twice, and a killed job loses at most the chunks in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopstack.errors import Conflict, Invalid
from loopstack.serving.batch._commit import Committer, part_name
from loopstack.serving.batch._plan import (
    Chunk,
    input_columns,
    plan_chunks,
    read_inputs,
    resolve_inputs,
)
from loopstack.serving.batch._worker import ChunkDone, Scorer, preloaded, score_chunk

__all__ = ["BatchResult", "predict_batch"]

EXECUTORS = ("local", "ray")
# forked workers share the parent's imported libraries (their pages are counted once);
# "spawn" where fork is not offered
_START_METHOD = "fork" if os.name == "posix" and sys.platform != "darwin" else "spawn"


@dataclass(frozen=True)
class BatchResult:
    """What a finished job did."""

    output: str
    rows: int
    chunks: int
    chunks_resumed: int
    seconds: float
    run_id: str | None
    model_version: str

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def predict_batch(
    model_uri: str,
    input: str | os.PathLike[str] | list[str] | None,  # noqa: A002 - the verb's own word
    output: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    key_columns: list[str] | None = None,
    chunk_rows: int = 200_000,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    overwrite: bool = False,
    resume: bool = True,
    track: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    features: Any = None,
    as_of: Any = None,
    timestamp_column: str | None = None,
    online: bool = False,
    full_feature_names: bool = False,
    feature_store: Any = None,
) -> BatchResult:
    """Score the Parquet ``input`` (a file, a directory or a glob) with ``model_uri`` into
    the Parquet file ``output``: the key columns (else a global ``row_id``), the
    ``model_version``, the ``prediction`` and, for a classifier, ``proba_<class>``.

    Bad input is refused before any work: an unresolvable model URI, input lacking a
    signature column, an existing output without ``overwrite``, a glob matching nothing.
    ``on_progress(rows_done, rows_total)`` is called as chunks finish. The job is a
    tracked run (``track``) with the model version and the input as lineage inputs.

    ``dataset="name/version"`` (or ``"name"``: its newest version) scores a registered
    dataset version instead of ``input`` (pass ``None``), and the run records that version
    as its input; an unregistered ``input`` is recorded by reference (its files' sizes,
    times and footers digested; nothing is copied).

    Feature enrichment: ``features`` (``["view:feature", ...]``, a FeatureService or a
    service's name) are joined to each chunk by the entity keys the input carries, from
    the offline store at ``as_of`` (one time for every row) or at each row's
    ``timestamp_column`` (point-in-time, the training-set join), or from the online store
    (``online=True``). Model input columns the input lacks come from those features.
    ``feature_store``: the FeatureStore to resolve them in (default: the configured one).

    >>> ls.predict_batch("models:/churn@production", "accounts/", "scores.parquet")
    """
    if executor not in EXECUTORS:
        raise Invalid(
            f"executor must be one of {list(EXECUTORS)}; got {executor!r}", field="executor"
        )
    if chunk_rows < 1:
        raise Invalid(f"chunk_rows must be at least 1; got {chunk_rows}", field="chunk_rows")
    out = Path(output).absolute()
    if out.exists() and not overwrite:
        raise Conflict(f"the output {out} exists; pass overwrite=True (--overwrite) to replace it")
    keys = tuple(key_columns or ())
    version_in = None
    if dataset is not None:
        if input is not None:
            raise Invalid("pass input or dataset, not both", field="dataset")
        version_in, input = _dataset_input(dataset)
    elif input is None:
        raise Invalid("pass the input (Parquet files) or dataset='name/version'", field="input")
    paths = resolve_inputs(input)
    from loopstack.registry._models import _locate

    located = _locate(model_uri)  # NotFound / Invalid for a URI that does not resolve
    version = located.version
    label = str(version.version) if version is not None else model_uri
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopstack-batch-model-") as tmp:
        package_dir = _fetch_package(model_uri, located, Path(tmp))
        from loopstack.registry.flavors import load_package

        probe = load_package(package_dir, expected_files=located.expected)
        signature = probe.signature
        if signature is None or not signature.is_tabular:
            raise Invalid(
                f"{model_uri} has no column signature; batch scoring reads named columns",
                field="model_uri",
            )
        columns = tuple(c.name for c in signature.columns)
        enrichment = None
        needed = list(dict.fromkeys([*keys, *columns]))
        if features is not None:
            from loopstack.serving.batch._features import plan_enrichment

            enrichment = plan_enrichment(
                features,
                input_columns(paths[0]),
                as_of=as_of,
                timestamp_column=timestamp_column,
                online=online,
                full_feature_names=full_feature_names,
                store=feature_store,
            )
            added = set(enrichment.outputs)
            needed = list(
                dict.fromkeys(
                    [*keys, *(c for c in columns if c not in added), *enrichment.entity_columns]
                )
            )
        elif as_of is not None or timestamp_column is not None or online:
            raise Invalid(
                "as_of, timestamp_column and online say how to read features; pass features=",
                field="features",
            )
        files = read_inputs(paths, needed)
        chunks = plan_chunks(files, chunk_rows)
        scorer = Scorer(
            str(package_dir), located.expected, columns, keys, label, tuple(needed), enrichment
        )
        staging = _staging(out, scorer, files, chunk_rows, resume)
        done = {c.chunk_id for c in chunks if (staging / part_name(c)).is_file()}
        todo = [c for c in chunks if c.chunk_id not in done]
        total = sum(c.rows for c in chunks)
        rows_done = sum(c.rows for c in chunks if c.chunk_id in done)
        if on_progress is not None:
            on_progress(rows_done, total)

        committer = Committer(chunks, staging, out, done)

        def finished(d: ChunkDone) -> None:
            nonlocal rows_done
            committer.add(d.chunk_id)
            rows_done += d.rows
            if on_progress is not None:
                on_progress(rows_done, total)

        with _start_run(
            track, model_uri, version, paths, files, chunk_rows, executor, keys, version_in
        ) as run:
            try:
                if executor == "ray":
                    from loopstack.serving.batch._ray import run_on_ray

                    run_on_ray(scorer, todo, staging, address, workers, finished)
                else:
                    with preloaded(scorer.package_dir, probe):  # forked workers share it
                        _run_local(scorer, todo, staging, workers, finished)
                committer.finish()
            finally:
                committer.abort()
            seconds = time.perf_counter() - started
            result = BatchResult(
                str(out), total, len(chunks), len(done), seconds, _run_id(run), label
            )
            _log_result(run, result)
        return result


def _dataset_input(spec: str) -> tuple[Any, str]:
    """The dataset version ``name/version`` (or ``name``: the newest) and its local Parquet
    file (verified against its digest)."""
    from loopstack.data import dataset_store

    if not isinstance(spec, str) or not spec.strip("/"):
        raise Invalid(f"dataset must be 'name/version' or 'name'; got {spec!r}", field="dataset")
    name, _, number = spec.rpartition("/") if "/" in spec else (spec, "", "")
    store = dataset_store()
    found = store.get(name, number or None)  # NotFound naming the dataset or version
    return found, str(store.local_path(found))


def _fetch_package(model_uri: str, located: Any, tmp: Path) -> Path:
    from loopstack.registry._models import _download

    return _download(model_uri, located, tmp / "package")


def _staging(out: Path, scorer: Scorer, files: list[Any], chunk_rows: int, resume: bool) -> Path:
    """The staging directory, emptied unless it holds this same job's parts."""
    staging = out.with_name(out.name + ".staging")
    manifest = {
        "format": 1,
        "model": scorer.expected_files or scorer.model_version,
        "model_version": scorer.model_version,
        "columns": list(scorer.columns),
        "key_columns": list(scorer.key_columns),
        "chunk_rows": chunk_rows,
        "inputs": [f.path for f in files],
        "features": None if scorer.enrichment is None else scorer.enrichment.manifest(),
    }
    path = staging / "manifest.json"
    if staging.is_dir():
        try:
            same = json.loads(path.read_text()) == manifest
        except (OSError, ValueError):
            same = False
        if not (resume and same):
            shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, sort_keys=True))
        os.replace(tmp, path)
    return staging


def _run_local(
    scorer: Scorer,
    todo: list[Chunk],
    staging: Path,
    workers: int | None,
    finished: Callable[[ChunkDone], None],
) -> None:
    if not todo:
        return
    import multiprocessing

    count = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    # a forked child's DuckDB (the offline join) can deadlock on a lock a thread of the
    # parent's DuckDB held at the fork: enriching workers start fresh
    method = "spawn" if scorer.enrichment is not None else _START_METHOD
    context = multiprocessing.get_context(method)
    pending = iter(todo)
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        running: set[Future[ChunkDone]] = set()

        def submit() -> None:
            chunk = next(pending, None)
            if chunk is not None:
                running.add(pool.submit(score_chunk, scorer, *_args(chunk, staging)))

        for _ in range(count * 2):  # bounded: at most two chunks per worker in flight
            submit()
        while running:
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ready:
                running.discard(future)
                try:
                    finished(future.result())
                except BaseException:
                    for other in running:
                        other.cancel()
                    raise
                submit()


def _args(chunk: Chunk, staging: Path) -> tuple[Any, ...]:
    part = str(staging / part_name(chunk))
    return (chunk.chunk_id, chunk.path, chunk.row_groups, chunk.first_row, part)


# -- tracking -----------------------------------------------------------------------------
def _start_run(
    track: bool,
    model_uri: str,
    version: Any,
    paths: list[str],
    files: list[Any],
    chunk_rows: int,
    executor: str,
    keys: tuple[str, ...],
    dataset: Any = None,
) -> Any:
    if not track:
        return contextlib.nullcontext()
    import loopstack as ls

    if dataset is not None:
        source = f"dataset:{dataset.name}/{dataset.version}"
    else:
        source = paths[0] if len(paths) == 1 else f"{len(paths)} files"
    run = ls.start_run(
        experiment="batch-inference",
        run_name=f"predict batch {model_uri}"[:200],
        params={
            "model_uri": model_uri,
            "input": source,
            "chunk_rows": chunk_rows,
            "executor": executor,
            "key_columns": ",".join(keys) or "row_id",
        },
        tags={"loopstack.job": "batch_inference"},
        capture_env=False,
        nested=True,
    )
    if dataset is not None:
        run.log_input(dataset, context="batch_inference")
    else:
        _log_reference(run, paths, files)
    if version is not None:
        _link_model(run.run_id, version)
    return run


def _log_reference(run: Any, paths: list[str], files: list[Any]) -> None:
    """An unregistered input, by reference: its path and a digest of its files'
    fingerprints (sizes, times, footers), so 10M rows are neither copied nor re-read."""
    import hashlib

    from loopstack.tracking._entities import DatasetInput

    digest = hashlib.sha256("|".join(f.fingerprint for f in files).encode()).hexdigest()
    source = paths[0] if len(paths) == 1 else os.path.commonpath(paths)
    run.client.log_inputs(
        run.run_id,
        [
            DatasetInput(
                Path(source).name or "batch-input",
                digest,
                "local",
                source,
                None,
                json.dumps({"files": len(paths), "rows": sum(sum(f.row_groups) for f in files)}),
                {"mlflow.data.context": "batch_inference"},
            )
        ],
    )


def _link_model(run_id: str, version: Any) -> None:
    """The lineage edge model version -> this run (local stores; through a server the
    run's ``model_uri`` param names it)."""
    from loopstack.config import settings
    from loopstack.store.remote import server_url

    if server_url(settings()) is not None:
        return
    from loopstack.store import open_stores
    from loopstack.store.metadata._lineage_edges import add_edges

    edge = ("model_version", f"{version.name}/{version.version}", "run", run_id, "scored")
    open_stores().db.write_unaudited(lambda conn: add_edges(conn, [edge]))


def _run_id(run: Any) -> str | None:
    return None if run is None else str(run.run_id)


def _log_result(run: Any, result: BatchResult) -> None:
    if run is None:
        return
    run.log_metrics(
        {
            "rows": float(result.rows),
            "rows_per_s": result.rows_per_s,
            "chunks": float(result.chunks),
            "chunks_resumed": float(result.chunks_resumed),
            "peak_rss_mib": _peak_rss_mib(),
        }
    )


def _peak_rss_mib() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(own + children) / 1024.0
