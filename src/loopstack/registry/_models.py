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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopstack.errors import Invalid, NotFound
from loopstack.registry._entities import ModelVersion

if TYPE_CHECKING:
    from loopstack.registry.flavors import LoadedModel

__all__ = ["load_model", "log_model", "resolve_model_uri"]

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
    from loopstack.registry._client import registry
    from loopstack.registry.flavors import MANIFEST_NAME, package_model
    from loopstack.tracking import TrackingClient

    client = TrackingClient()
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="loopstack-model-") as tmp:
        package_dir = Path(tmp) / "package"
        package = package_model(
            model, package_dir, sample_input=sample_input, flavor=flavor, onnx=onnx
        )
        client.log_artifact(run_id, package_dir, artifact_path)
    if name is None:
        return None
    return registry().create_model_version(
        name,
        source=f"{run.artifact_uri}/{artifact_path.strip('/')}",
        # The manifest's own digest too: an edited loopstack-model.json (class path,
        # requirements) is refused like any other altered file.
        files={**package.files, MANIFEST_NAME: package.manifest_sha256},
        flavor=package.flavor,
        signature=package.signature.to_dict() if package.signature else {},
        requirements=package.requirements,
        run_id=run_id,
        code_version=run.tags.get("mlflow.source.git.commit"),
        description=description,
        tags=tags,
        onnx_max_abs_diff=package.onnx_max_abs_diff,
        parents=parents,
    )


def resolve_model_uri(uri: str) -> tuple[str, dict[str, str] | None, ModelVersion | None]:
    """(logical artifact path, digests the registry recorded or None, version or None)."""
    from loopstack.registry._client import registry

    m = _MODELS_URI.match(uri)
    if m:
        reg = registry()
        if m["alias"]:
            version = reg.get_version_by_alias(m["name"], m["alias"])
        elif m["version"] == "latest":
            version = reg.get_version_by_alias(m["name"], "latest")
        else:
            version = reg.get_model_version(m["name"], m["version"])
        return version.source, version.files, version
    m = _RUNS_URI.match(uri)
    if m:
        from loopstack.store.artifacts import sanitize_path
        from loopstack.tracking import TrackingClient

        run = TrackingClient().get_run(m["run_id"])
        return f"{run.artifact_uri}/{sanitize_path(m['path'])}", None, None
    raise Invalid(
        "expected a model URI like 'models:/<name>@<alias>', 'models:/<name>/<version>' "
        f"or 'runs:/<run_id>/<path>'; got {uri!r} instead",
        field="model_uri",
    )


def load_model(uri: str, *, prefer_onnx: bool = False) -> LoadedModel:
    """Load a registered or logged model; its input is checked against its signature.

    >>> model = ls.load_model("models:/churn@production")
    >>> model.predict(frame)
    """
    from loopstack.registry.flavors import load_package
    from loopstack.store import open_stores

    source, expected, version = resolve_model_uri(uri)
    if version is not None and not version.files:
        raise NotFound(
            f"{uri} was registered without a loopstack package (no files recorded "
            f"under {source!r}); it cannot be loaded with load_model"
        )
    stores = open_stores()
    with tempfile.TemporaryDirectory(prefix="loopstack-load-") as tmp:
        # Every blob is verified against its digest as it is downloaded.
        local = stores.artifacts.download(source, Path(tmp) / "dl")
        target = Path(tempfile.mkdtemp(prefix="loopstack-model-"))
        shutil.copytree(local, target, dirs_exist_ok=True)
    # Deserialise only after every file matches what the registry recorded.
    return load_package(target, expected_files=expected, prefer_onnx=prefer_onnx)
