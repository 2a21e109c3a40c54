"""The pytorch flavor's two formats: TorchScript (scripted or traced) and state dict + class."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopstack.errors import Invalid
from loopstack.registry.flavors import TorchStateDict, package_model

from .flavor_cases import build

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("case_name", "expected"),
    [
        ("torch_script", {"format": "torchscript", "method": "script", "file": "model.pt"}),
        ("torch_trace", {"format": "torchscript", "method": "trace", "file": "model.pt"}),
        (
            "torch_state_dict",
            {
                "format": "state_dict",
                "class": "tests.registry.flavors.torch_nets:TinyNet",
                "init_kwargs": {"n_in": 4, "n_out": 3, "hidden": 5},
                "file": "state_dict.pt",
            },
        ),
    ],
)
def test_metadata_records_the_format(case_name: str, expected: dict, tmp_path: Path) -> None:
    case = build(case_name)
    package = package_model(case.model, tmp_path / "m", sample_input=case.sample)
    assert package.metadata == expected
    assert any(r.startswith("torch==2.") for r in package.requirements)


def test_unscriptable_module_without_sample_is_refused(tmp_path: Path) -> None:
    from .torch_nets import VarargsNet

    with pytest.raises(
        Invalid, match="torch.jit.script could not compile VarargsNet.*sample_input"
    ):
        package_model(VarargsNet(4), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_state_dict_needs_an_importable_class(tmp_path: Path) -> None:
    class LocalNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

    with pytest.raises(Invalid, match="needs a class importable as 'module:Class'"):
        package_model(TorchStateDict(LocalNet()), tmp_path / "m")


def test_state_dict_checks_the_constructor_arguments(tmp_path: Path) -> None:
    from .torch_nets import TinyNet

    with pytest.raises(Invalid, match=r"TinyNet\(\*\*\{'n_in': 4, 'n_out': 2\}\) does not accept"):
        package_model(TorchStateDict(TinyNet(4, 3), {"n_in": 4, "n_out": 2}), tmp_path / "m")
    with pytest.raises(Invalid, match="init_kwargs must be JSON values"):
        package_model(TorchStateDict(TinyNet(4, 3), {"n_in": 4, "n_out": object()}), tmp_path / "n")
