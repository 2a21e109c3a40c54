"""``log_model`` and ``load_model``: package a model with its run, register it, load it safely.

A version records the sha256 of every file of its package. ``load_model``
downloads the package (each blob verified against the artifact manifest),
then checks every file against the digests the registry recorded before
anything is deserialised: a tampered artifact is refused.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, NotFound
from loopstack.registry._entities import ModelVersion

if TYPE_CHECKING:
    from loopstack.registry.flavors import LoadedModel

__all__ = ["TRAINING_SET_TAG", "load_model", "log_model", "resolve_model_uri", "training_set_of"]

#: the model version tag naming the training set (``name/version``) it was trained on
TRAINING_SET_TAG = "loopstack.training_set"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{1,32})/(?P<path>.+)$")


def log_model(
    run_id: str,
    model: Any,
    *,
    name: str | None = None,
    artifact_path: str = "model",
    sample_input: Any = None,
    flavor: str | None = None,
    onnx: bool = False,
    description: str = "",
    tags: dict[str, str] | None = None,
    parents: list[tuple[str, int]] | None = None,
) -> ModelVersion | None:
    """Package ``model`` into the run's artifacts; with ``name``, register a new version.

    >>> with ls.start_run(experiment="churn") as run:
    ...     version = run.log_model(clf, name="churn", sample_input=X[:5])
    """
    from loopstack._progress import phases
    from loopstack.registry.flavors import package_model
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    run = client.get_run(run_id)
    title = f"logging model {name or artifact_path}"
    with (
        phases(title, ("packaging", "uploading", "registering")) as step,
        tempfile.TemporaryDirectory(prefix="loopstack-model-") as tmp,
    ):
        step("packaging")
        package_dir = Path(tmp) / "package"
        package = package_model(
            model, package_dir, sample_input=sample_input, flavor=flavor, onnx=onnx
        )
        step("uploading")
        client.log_artifact(run_id, package_dir, artifact_path)
        if name is None:
            return None
        step("registering")
        return _register(client, run, package, name, artifact_path, description, tags, parents)


def training_set_of(run: Any) -> str | None:
    """The training set (``name/version``) ``run`` took as its ``training`` input (the
    last one logged), or None: what a model version logged from the run records.

    ``get_historical_features(..., register_as=NAME)`` inside an active run logs it.
    """
    found = None
    for ds in getattr(run, "inputs", None) or []:
        version = ds.tags.get("loopstack.dataset_version")
        if version and ds.tags.get("mlflow.data.context") == "training":
            found = version
    return found


def _register(
    client: Any,
    run: Any,
    package: Any,
    name: str,
    artifact_path: str,
    description: str,
    tags: dict[str, str] | None,
    parents: list[tuple[str, int]] | None,
) -> ModelVersion:
    from loopstack.registry._client import registry
    from loopstack.registry.flavors import MANIFEST_NAME

    training_set = training_set_of(run)
    if training_set is not None:
        # the features an endpoint reads for this version (serving's enrichment)
        tags = {TRAINING_SET_TAG: training_set, **(tags or {})}
    return registry().create_model_version(
        name,
        source=f"{run.artifact_uri}/{artifact_path.strip('/')}",
        # The manifest's own digest too: an edited loopstack-model.json (class path,
        # requirements) is refused like any other altered file.
        files={**package.files, MANIFEST_NAME: package.manifest_sha256},
        flavor=package.flavor,
        signature=package.signature.to_dict() if package.signature else {},
        requirements=package.requirements,
        run_id=run.run_id,
        code_version=run.tags.get("mlflow.source.git.commit"),
        description=description,
        tags=tags,
        onnx_max_abs_diff=package.onnx_max_abs_diff,
        parents=parents,
    )


def resolve_model_uri(uri: str) -> tuple[str, dict[str, str] | None, ModelVersion | None]:
    """(logical artifact path, digests the registry recorded or None, version or None)."""
    located = _locate(uri)
    return located.source, located.expected, located.version


@dataclass(frozen=True)
class _Located:
    source: str  # the package's artifact path, as the store recorded it
    expected: dict[str, str] | None  # the digests the registry recorded
    version: ModelVersion | None
    run_id: str | None  # the run whose artifacts hold the package, when known
    run_path: str | None  # the package's path under that run's artifacts


def _under_run(source: str, artifact_uri: str) -> str | None:
    root = artifact_uri.rstrip("/") + "/"
    return source[len(root) :].strip("/") if source.startswith(root) else None


def _locate(uri: str) -> _Located:
    from loopstack.registry._client import registry
    from loopstack.tracking import TrackingClient

    m = _MODELS_URI.match(uri)
    if m:
        reg = registry()
        # The version as its keyed registration event recorded it: a record rewritten in
        # the database (files' digests, source) is refused before anything is fetched.
        number: int | str = m["version"]
        if m["alias"] or number == "latest":
            number = reg.get_version_by_alias(m["name"], m["alias"] or "latest").version
        version = reg.get_verified_model_version(m["name"], number)
        run_path = None
        if version.run_id:
            run_path = _under_run(
                version.source, TrackingClient().get_run(version.run_id).artifact_uri
            )
        return _Located(version.source, version.files, version, version.run_id, run_path)
    m = _RUNS_URI.match(uri)
    if m:
        from loopstack.store.artifacts import sanitize_path

        run = TrackingClient().get_run(m["run_id"])
        path = sanitize_path(m["path"])
        return _Located(f"{run.artifact_uri}/{path}", None, None, run.run_id, path)
    raise Invalid(
        "expected a model URI like 'models:/<name>@<alias>', 'models:/<name>/<version>' "
        f"or 'runs:/<run_id>/<path>'; got {uri!r} instead",
        field="model_uri",
    )


def _download(uri: str, located: _Located, dest: Path) -> Path:
    """The package's files under ``dest``: from the artifact store, or through the server's
    run artifact routes (each blob is verified against its digest where it is stored)."""
    from loopstack.config import settings
    from loopstack.store.remote import server_url

    if server_url(settings()) is None:
        from loopstack.store import open_stores

        return open_stores().artifacts.download(located.source, dest)
    if located.run_id is None or located.run_path is None:
        raise NotFound(
            f"{uri} is stored at {located.source!r}, outside any run's artifacts: "
            "through a server a package is fetched from the run it was logged in"
        )
    from loopstack.tracking import TrackingClient

    return TrackingClient().download_artifacts(located.run_id, located.run_path, dest)


def load_model(uri: str, *, prefer_onnx: bool = False) -> LoadedModel:
    """Load a registered or logged model; its input is checked against its signature.

    Every file is checked against the sha256 the registry recorded for the version
    before anything is deserialised (``ArtifactCorrupted`` on a mismatch), whether the
    package comes from the local artifact store or through a server.

    >>> model = ls.load_model("models:/churn@production")
    >>> model.predict(frame)
    """
    from loopstack.registry.flavors import load_package

    located = _locate(uri)
    if located.version is not None and not located.version.files:
        raise NotFound(
            f"{uri} was registered without a loopstack package (no files recorded "
            f"under {located.source!r}); it cannot be loaded with load_model"
        )
    with tempfile.TemporaryDirectory(prefix="loopstack-load-") as tmp:
        local = _download(uri, located, Path(tmp) / "dl")
        target = Path(tempfile.mkdtemp(prefix="loopstack-model-"))
        shutil.copytree(local, target, dirs_exist_ok=True)
    # Deserialise only after every file matches what the registry recorded.
    return load_package(target, expected_files=located.expected, prefer_onnx=prefer_onnx)
