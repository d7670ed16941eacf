"""The SwiGLU MLP of DeltaNet and LaCT blocks (fla's ``GatedMLP``, fla/modules/mlp.py:30-80)."""

from __future__ import annotations

import torch
from torch import nn

from refine.ops.swiglu import swiglu_linear


class GatedMLP(nn.Module):
    """SwiGLU MLP ``down(silu(gate(x)) * up(x))`` with fla's sizing and parameter names (fla/modules/mlp.py:44-62);
    ``fused``: fla's ``swiglu_linear`` on CUDA (:mod:`refine.ops.swiglu`)."""

    def __init__(self, hidden_size: int, hidden_ratio: int | None, intermediate_size: int | None, fused: bool = False):
        super().__init__()
        if intermediate_size is None:  # 2/3 * ratio * hidden, rounded up to a multiple of 256
            intermediate_size = int(hidden_size * (hidden_ratio or 4) * 2 / 3)
            intermediate_size = 256 * ((intermediate_size + 255) // 256)
        self.fused = fused
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu_linear(self.gate_proj(x), self.up_proj(x), self.down_proj.weight, self.down_proj.bias, self.fused)
