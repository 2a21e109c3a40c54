"""``loopstack-model.json``: what a package holds and how to load it.

::

    {"format_version": 1, "flavor": "sklearn", "flavor_metadata": {...},
     "signature": {...} | null, "requirements": ["scikit-learn==1.5.2", ...],
     "files": {"model.joblib": "<sha256>", ...}, "has_proba": true,
     "onnx": null | {"file": "model.onnx", "max_abs_diff": 1e-7,
                     "compared": "predict_proba", "requirements": [...]}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopstack.errors import ArtifactCorrupted, Invalid

from ._digests import MANIFEST_NAME, sha256_of
from ._signature import Signature

__all__ = ["FORMAT_VERSION", "ModelPackage", "read_manifest", "write_manifest"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelPackage:
    """A packaged model, as described by its ``loopstack-model.json``.

    ``files`` maps each file's path relative to the package to its sha256
    (the manifest itself excluded; its digest is ``manifest_sha256``).
    """

    flavor: str
    signature: Signature | None
    requirements: list[str]
    files: dict[str, str]
    has_proba: bool
    onnx_max_abs_diff: float | None
    metadata: dict[str, Any]
    onnx: dict[str, Any] | None = None
    manifest_sha256: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "flavor": self.flavor,
            "flavor_metadata": self.metadata,
            "signature": None if self.signature is None else self.signature.to_dict(),
            "requirements": list(self.requirements),
            "files": dict(sorted(self.files.items())),
            "has_proba": self.has_proba,
            "onnx": self.onnx,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, manifest_sha256: str = "") -> ModelPackage:
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise Invalid(
                f"this loopstack reads model packages of format version <= {FORMAT_VERSION}; "
                f"got format_version {version!r} (upgrade loopstack to load it)",
                field="format_version",
            )
        try:
            signature = data.get("signature")
            onnx = data.get("onnx")
            return cls(
                flavor=str(data["flavor"]),
                signature=None if signature is None else Signature.from_dict(signature),
                requirements=[str(r) for r in data["requirements"]],
                files={str(k): str(v) for k, v in dict(data["files"]).items()},
                has_proba=bool(data["has_proba"]),
                onnx_max_abs_diff=None if onnx is None else float(onnx["max_abs_diff"]),
                metadata=dict(data["flavor_metadata"]),
                onnx=None if onnx is None else dict(onnx),
                manifest_sha256=manifest_sha256,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactCorrupted(
                f"{MANIFEST_NAME} lacks or garbles a required field ({exc!r}); expected "
                "format_version, flavor, flavor_metadata, signature, requirements, files, "
                "has_proba and onnx",
                field=MANIFEST_NAME,
            ) from exc


def write_manifest(directory: Path, package: ModelPackage) -> str:
    """Write the manifest; return its sha256."""
    path = directory / MANIFEST_NAME
    path.write_text(
        json.dumps(package.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return sha256_of(path)


def read_manifest(directory: Path) -> ModelPackage:
    """The package described by ``directory``'s manifest (nothing else is read)."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise Invalid(
            f"{directory} is not a loopstack model package: expected a {MANIFEST_NAME} in it",
            field="path",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactCorrupted(
            f"{MANIFEST_NAME} is not valid JSON ({exc})", field=MANIFEST_NAME
        ) from exc
    if not isinstance(data, dict):
        raise ArtifactCorrupted(
            f"{MANIFEST_NAME} must hold a JSON object; got {type(data).__name__}",
            field=MANIFEST_NAME,
        )
    return ModelPackage.from_dict(data, manifest_sha256=sha256_of(path))
