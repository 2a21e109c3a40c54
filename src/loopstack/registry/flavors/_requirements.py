"""Package pins recorded with a model, and the check made before loading it.

A pin is ``"distribution==version"``. At load time a missing distribution is
an error (the model cannot be read without it); a different major.minor
version only warns, since most frameworks read their older formats.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import sys
import warnings
from collections.abc import Iterable, Mapping

from loopstack.errors import Invalid

__all__ = [
    "RequirementMismatchWarning",
    "check_requirements",
    "distributions_of",
    "pin",
]

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)\s*$")

# Modules whose distribution is the platform itself or the interpreter: never pinned.
_UNPINNED_ROOTS = frozenset({"builtins", "__main__", "loopstack"}) | frozenset(
    sys.stdlib_module_names
)


class RequirementMismatchWarning(UserWarning):
    """An installed package's major.minor differs from the one the model was saved with."""


def pin(distribution: str) -> str:
    """``"distribution==installed version"``; the distribution must be installed."""
    return f"{distribution}=={importlib.metadata.version(distribution)}"


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    # Scanning every installed distribution takes a third of a second: once per process.
    return importlib.metadata.packages_distributions()


def distributions_of(objects: Iterable[object]) -> list[str]:
    """Pins of the installed distributions that define the classes of ``objects``.

    Objects whose class comes from the standard library, loopstack, ``__main__``
    or a module no installed distribution provides (a project's own code) add
    nothing.
    """
    provider = _providers()
    pins: set[str] = set()
    for obj in objects:
        root = type(obj).__module__.split(".")[0]
        if root in _UNPINNED_ROOTS:
            continue
        for distribution in provider.get(root, ())[:1]:
            try:
                pins.add(pin(distribution))
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(pins)


def _parse(requirement: str) -> tuple[str, str]:
    match = _PIN.match(requirement)
    if match is None:
        raise Invalid(
            f"a model requirement must look like 'package==version'; got {requirement!r}",
            field="requirements",
        )
    return match.group(1), match.group(2)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(re.split(r"[.+]", version)[:2])


def check_requirements(requirements: Iterable[str]) -> None:
    """Raise ``Invalid`` for a missing package; warn for a different major.minor version.

    >>> check_requirements(["numpy==" + importlib.metadata.version("numpy")])
    """
    for requirement in requirements:
        name, wanted = _parse(requirement)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise Invalid(
                f"this model needs {name}=={wanted} to load, but {name} is not installed "
                f"(pip install {name}=={wanted})",
                field="requirements",
            ) from None
        if _major_minor(installed) != _major_minor(wanted):
            warnings.warn(
                f"this model was saved with {name}=={wanted} but {name}=={installed} is "
                f"installed; it may load or predict differently "
                f"(pip install {name}=={wanted} to match)",
                RequirementMismatchWarning,
                stacklevel=3,
            )
