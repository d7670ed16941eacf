"""SwiGLU followed by the down projection: ``down(silu(gate) * up)`` (fla/modules/mlp.py:30-80).

With ``fused=True`` on CUDA, when fla imports, fla's ``swiglu_linear`` (fla/modules/activations/ops.py:668-713)
runs it, keeping only the inputs for the backward (not ``silu(gate) * up``); the torch form is the CPU path and the
reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from refine.ops.fla import fla_symbols


def swiglu_linear(
    gate: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, fused: bool = False
) -> torch.Tensor:
    """``F.linear(silu(gate) * up, weight, bias)``; fla's kernel when ``fused`` on CUDA and fla imports."""
    found = fused and gate.is_cuda and fla_symbols("fla.modules.activations", "swiglu_linear")
    if found:
        return found[0](gate, up, weight, bias)
    return F.linear(F.silu(gate) * up, weight, bias)
