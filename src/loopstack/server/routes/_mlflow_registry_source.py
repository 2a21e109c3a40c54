"""What a new model version's ``source`` names, as files loopstack can vouch for.

MLflow's client sends the location of the model's files; loopstack records the
sha256 of every file under it, read from the artifact manifest, so the version's
digest says exactly which bytes were registered. Accepted sources:

- ``mlflow-artifacts:/<exp>/<run>/artifacts/<path>``: what ``register_model("runs:/...")``
  sends once it has found an ``MLmodel`` file under the run's artifact path. The path
  is loopstack's logical artifact path; with ``run_id`` it must lie inside that run's
  artifacts, without one the run is taken from the path when it names one.
- ``runs:/<run_id>/<path>``: the same, spelled by run.
- ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/latest``:
  another registered version's package, copied with its run; the new version records
  that one as its parent in the lineage.
- ``models:/<model_id>``: an MLflow 3 logged model (what ``log_model(...,
  registered_model_name=...)`` and ``register_model("runs:/<id>/model")`` send): the
  files under the model's own location, with its source run; the version is tagged
  with the model's id (``MODEL_ID_TAG``).
- ``mlflow-artifacts:/<exp>/models/<model_id>/artifacts``: the same, spelled by location.
- any other URI with a scheme (``s3://...``): an external location loopstack does not
  hold, kept verbatim with no file digests.

Local paths are refused (the server cannot read the client's disk). When a
loopstack-held source has no files under it, the version is still registered (as
MLflow allows) with an empty file list; in both unverified cases the tag
``loopstack.package`` says why the version carries no digests.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from loopstack.errors import Invalid, LoopstackError, NotFound
from loopstack.registry import ModelVersion, SqlRegistry
from loopstack.server.routes._mlflow_registry_render import MODEL_ID_TAG
from loopstack.store.artifacts import ArtifactStore, sanitize_path
from loopstack.tracking._logged_models import LoggedModelStore
from loopstack.tracking._sql_store import SqlTrackingStore

__all__ = ["MODEL_ID_TAG", "PACKAGE_TAG", "Package", "resolve_source"]

#: set on a version whose files loopstack could not record, saying why
PACKAGE_TAG = "loopstack.package"
_EMPTY = "empty: nothing was stored under the source when this version was registered"
_EXTERNAL = "external: loopstack does not hold the files at this source, so none are recorded"
_MAX_DESCRIPTOR = 1 << 20  # MLmodel / loopstack-model.json are small; larger ones are not read
_LOCAL = re.compile(r"^(?:[A-Za-z]:[\\/]|[/\\.~])")


@dataclass
class Package:
    """Everything ``SqlRegistry.create_model_version`` needs about the source."""

    source: str
    run_id: str | None
    files: dict[str, str]
    flavor: str = "unknown"
    signature: dict[str, Any] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    parents: list[tuple[str, int]] = field(default_factory=list)


def resolve_source(
    source: str,
    run_id: str | None,
    *,
    tracking: SqlTrackingStore,
    registry: SqlRegistry,
    artifacts: ArtifactStore,
    model_id: str | None = None,
) -> Package:
    """The files, flavor, signature and run of ``source``, for a new model version.

    ``model_id`` (MLflow 3's field beside the source) names the logged model the
    source must be.
    """
    run_id = run_id or None
    models = LoggedModelStore(tracking)
    if model_id:
        return _from_logged_model(models, artifacts, model_id, run_id, source)
    if not source.strip():
        raise Invalid("a model version needs a source; got an empty one", field="source")
    parsed = urllib.parse.urlparse(source)
    scheme = parsed.scheme.lower()
    if _LOCAL.match(source) or scheme in ("", "file") or len(scheme) == 1:
        raise Invalid(
            f"the source {source!r} is a local path, which this server cannot read: log the "
            "model's files to a run and register 'runs:/<run_id>/<path>' instead",
            field="source",
        )
    if scheme == "mlflow-artifacts":
        logical = _logical(parsed.path, source)
        parts = logical.split("/")
        if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
            return _from_logged_model(models, artifacts, parts[2], run_id, source)
        run_id = _owning_run(tracking, logical, run_id, source)
        return _held(artifacts, logical, run_id)
    if scheme == "runs":
        rid, _, path = parsed.path.lstrip("/").partition("/")
        if parsed.netloc or not rid:
            raise Invalid(
                f"expected 'runs:/<run_id>/<path>' as the source; got {source!r}", field="source"
            )
        if run_id is not None and run_id != rid:
            raise Invalid(
                f"the source {source!r} names run {rid!r} but the run_id is "
                f"{run_id!r}: they must be the same run",
                field="run_id",
            )
        root = tracking.get_run(rid).artifact_uri
        rel = sanitize_path(path, field="source", allow_empty=True)
        return _held(artifacts, f"{root}/{rel}" if rel else root, rid)
    if scheme == "models":
        ident = parsed.path.lstrip("/")
        if not parsed.netloc and ident.startswith("m-") and "/" not in ident and "@" not in ident:
            return _from_logged_model(models, artifacts, ident, run_id, source)
        return _from_version(registry, _registered_version(registry, parsed, source), run_id)
    return Package(source=source, run_id=run_id, files={}, tags={PACKAGE_TAG: _EXTERNAL})


def _from_logged_model(
    models: LoggedModelStore,
    artifacts: ArtifactStore,
    model_id: str,
    run_id: str | None,
    source: str,
) -> Package:
    """The files under a logged model's own location, with the run that produced it."""
    model = models.get(model_id)
    if run_id is not None and model.source_run_id and run_id != model.source_run_id:
        raise Invalid(
            f"the run_id {run_id!r} is not the source run of logged model {model_id!r} "
            f"({model.source_run_id})",
            field="run_id",
        )
    expected = f"models:/{model_id}"
    location = model.artifact_location.strip("/")
    if source not in (expected, f"mlflow-artifacts:/{location}") and not source.startswith(
        f"mlflow-artifacts:/{location}"
    ):
        raise Invalid(
            f"Invalid model version source: {source!r}. The model_id request parameter must "
            f"identify the resource that contains the source (expected {expected!r})",
            field="source",
        )
    package = _held(artifacts, location, run_id or model.source_run_id)
    package.tags[MODEL_ID_TAG] = model_id
    return package


def _logical(path: str, source: str) -> str:
    try:
        return sanitize_path(urllib.parse.unquote(path).lstrip("/"), field="source")
    except Invalid as exc:
        raise Invalid(
            f"the source {source!r} is not a usable artifact location: {exc.message}",
            field="source",
        ) from exc


def _owning_run(
    tracking: SqlTrackingStore, logical: str, run_id: str | None, source: str
) -> str | None:
    """The run whose artifacts hold ``logical``: the one given (checked) or the one it names."""
    if run_id is not None:
        root = tracking.get_run(run_id).artifact_uri.strip("/")
        if logical != root and not logical.startswith(root + "/"):
            raise Invalid(
                f"the source {source!r} is not inside the artifacts of run {run_id!r} "
                f"(mlflow-artifacts:/{root}): register a location the run holds",
                field="source",
            )
        return run_id
    parts = logical.split("/")
    if len(parts) >= 3 and parts[2] == "artifacts":
        try:
            run = tracking.get_run(parts[1])
        except (NotFound, Invalid):
            return None
        root = run.artifact_uri.strip("/")
        if logical == root or logical.startswith(root + "/"):
            return run.run_id
    return None


def _held(artifacts: ArtifactStore, logical: str, run_id: str | None) -> Package:
    files = {
        f.path: f.sha256
        for f in artifacts.list(logical, recursive=True)
        if not f.is_dir and f.sha256
    }
    if not files and "/" in logical:  # the source may name a single file
        parent, _, leaf = logical.rpartition("/")
        files = {
            f.path: f.sha256
            for f in artifacts.list(parent)
            if f.path == leaf and not f.is_dir and f.sha256
        }
        if files:
            return Package(source=logical, run_id=run_id, files=files)
    package = Package(source=logical, run_id=run_id, files=files)
    if not files:
        package.tags[PACKAGE_TAG] = _EMPTY
    elif "loopstack-model.json" in files:
        _describe_loopstack(package, _read_json(artifacts, f"{logical}/loopstack-model.json"))
    elif "MLmodel" in files:
        _describe_mlflow(package, _read_text(artifacts, f"{logical}/MLmodel"))
    return package


def _read_text(artifacts: ArtifactStore, path: str) -> str | None:
    try:
        data = artifacts.read_bytes(path)
    except LoopstackError:
        return None
    if len(data) > _MAX_DESCRIPTOR:
        return None
    return data.decode("utf-8", errors="replace")


def _read_json(artifacts: ArtifactStore, path: str) -> Any:
    text = _read_text(artifacts, path)
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def _describe_loopstack(package: Package, manifest: Any) -> None:
    """Flavor, signature and requirements from a loopstack package's manifest."""
    if not isinstance(manifest, dict):
        return
    package.flavor = str(manifest.get("flavor") or "unknown")
    if isinstance(manifest.get("signature"), dict):
        package.signature = manifest["signature"]
    if isinstance(manifest.get("requirements"), list):
        package.requirements = [str(r) for r in manifest["requirements"]]


def _describe_mlflow(package: Package, text: str | None) -> None:
    """Flavor ``mlflow.<flavor>`` and the column signature from an MLflow ``MLmodel`` file.

    The flavor is prefixed: the package is in MLflow's layout, which loopstack's own
    loaders (reading ``loopstack-model.json``) do not load.
    """
    if text is None:
        return
    try:
        import yaml

        doc = yaml.safe_load(text)
    except Exception:  # an unreadable MLmodel leaves the version undescribed, not refused
        return
    if not isinstance(doc, dict):
        return
    flavors = doc.get("flavors")
    if isinstance(flavors, dict) and flavors:
        names = [str(n) for n in flavors if n != "python_function"] or ["python_function"]
        package.flavor = f"mlflow.{names[0]}"
    signature = doc.get("signature")
    if isinstance(signature, dict):
        columns = _mlflow_columns(signature.get("inputs"))
        if columns:
            package.signature = {"inputs": {"type": "columns", "columns": columns}}


def _mlflow_columns(inputs: Any) -> list[dict[str, str]]:
    """MLflow's column specs (a JSON string of ``{"name", "type"}``) as loopstack's columns."""
    try:
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    except ValueError:
        return []
    if not isinstance(specs, list):
        return []
    out = []
    for spec in specs:
        if not isinstance(spec, dict) or "name" not in spec or spec.get("type") == "tensor":
            return []  # tensor or unnamed inputs: no column signature
        out.append({"name": str(spec["name"]), "dtype": str(spec.get("type", ""))})
    return out


def _registered_version(
    registry: SqlRegistry, parsed: urllib.parse.ParseResult, source: str
) -> ModelVersion:
    parts = parsed.path.lstrip("/").split("/")
    if parsed.netloc or not parts[0] or len(parts) > 2:
        raise Invalid(
            f"expected 'models:/<name>/<version>' or 'models:/<name>@<alias>' as the "
            f"source; got {source!r}",
            field="source",
        )
    if len(parts) == 2:
        name, suffix = parts
        if suffix.isdigit():
            return registry.get_model_version(name, int(suffix))
        if suffix.lower() == "latest":
            return registry.get_version_by_alias(name, "latest")
        raise Invalid(
            f"the source {source!r} names the stage {suffix!r}: loopstack has no "
            "stages; use 'models:/<name>@<alias>' or a version number",
            field="source",
        )
    name, at, alias = parts[0].rpartition("@")
    if at and name and alias:
        return registry.get_version_by_alias(name, alias)
    raise NotFound(
        f"the source {source!r} names no registered version and no logged model: expected "
        "'models:/<name>/<version>', 'models:/<name>@<alias>' or 'models:/<model_id>'"
    )


def _from_version(registry: SqlRegistry, parent: ModelVersion, run_id: str | None) -> Package:
    if run_id is not None and run_id != (parent.run_id or ""):
        raise Invalid(
            f"the run_id {run_id!r} does not match the run of {parent.name} version "
            f"{parent.version} ({parent.run_id or 'none'})",
            field="run_id",
        )
    tags = {PACKAGE_TAG: parent.tags[PACKAGE_TAG]} if PACKAGE_TAG in parent.tags else {}
    return Package(
        source=parent.source,
        run_id=parent.run_id,
        files=dict(parent.files),
        flavor=parent.flavor,
        signature=dict(parent.signature),
        requirements=list(parent.requirements),
        tags=tags,
        parents=[(parent.name, parent.version)],
    )
