"""Small torch modules for the pytorch flavor tests (imports torch: import only when needed)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Two linear layers; scriptable."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class VarargsNet(nn.Module):
    """torch.jit.script rejects *args, so this one must be traced."""

    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)

    def forward(self, *inputs):  # type: ignore[no-untyped-def]
        return self.linear(inputs[0]).squeeze(-1)
