"""An on-demand view's udf, read back from the registry: imported only when needed, only
from allowed modules, and only while its code is the code that was applied."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pandas as pd
import pytest

from loopstack.errors import NotFound
from loopstack.features import Field, OnDemandFeatureView, RequestSource
from loopstack.features._definitions import definition_from_dict

UDF = """
import pathlib
import pandas as pd
pathlib.Path({marker!r}).write_text("imported")

def doubled(df):
    return pd.DataFrame({{"more": df["x"] * {factor}}})
"""


def _module(tmp_path: Path, name: str, factor: int) -> object:
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(UDF.format(marker=str(marker), factor=factor))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def _stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> dict:
    """The stored form of a view over ``name.doubled``, as another process reads it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _module(tmp_path, name, 2)
    view = OnDemandFeatureView(
        "dbl",
        sources=[RequestSource("req", [Field("x", "int64")])],
        schema=[Field("more", "int64")],
        udf=module.doubled,  # type: ignore[attr-defined]
    )
    data = view.to_dict()
    sys.modules.pop(name, None)  # "another process": the module is not imported yet
    (tmp_path / f"{name}.imported").unlink()
    return data


def test_reading_a_definition_imports_nothing_until_the_udf_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = definition_from_dict(_stored(tmp_path, monkeypatch, "udf_lazy"))
    assert not (tmp_path / "udf_lazy.imported").exists()  # a server storing it runs nothing
    out = view.transform(pd.DataFrame({"x": [1, 2]}))
    assert out["more"].tolist() == [2, 4]
    assert (tmp_path / "udf_lazy.imported").exists()


def test_a_udf_whose_code_changed_since_apply_does_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _stored(tmp_path, monkeypatch, "udf_changed")
    _module(tmp_path, "udf_changed", 3)  # the code on disk is no longer the applied code
    view = definition_from_dict(data)
    with pytest.raises(NotFound, match=r"udf_changed:doubled changed since the view was applied"):
        view.transform(pd.DataFrame({"x": [1]}))


def test_only_allowed_modules_are_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _stored(tmp_path, monkeypatch, "udf_denied")
    monkeypatch.setenv("LOOPSTACK_UDF_MODULES", "team_features, other.pkg")
    view = definition_from_dict(data)
    with pytest.raises(NotFound, match=r"'udf_denied' is not in LOOPSTACK_UDF_MODULES"):
        view.transform(pd.DataFrame({"x": [1]}))
    assert not (tmp_path / "udf_denied.imported").exists()
    monkeypatch.setenv("LOOPSTACK_UDF_MODULES", "udf_denied")
    assert definition_from_dict(data).transform(pd.DataFrame({"x": [5]}))["more"].tolist() == [10]
