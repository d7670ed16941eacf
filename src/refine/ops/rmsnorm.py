"""RMSNorm computed in fp32 like fla's Triton kernels (fla/modules/norm/layernorm.py:906-927, ``rms_norm_ref``
with ``upcast=True``), plus the output-gated variant (fla/modules/norm/fused_norm_gate.py:101-104, swish gate).

With ``fused=True`` on CUDA, when fla imports, the module runs fla's Triton kernels instead: ``rms_norm``
(fla/modules/norm/layernorm.py:690) and ``rms_norm_gated`` (fla/modules/norm/fused_norm_gate.py:832), the kernels
behind fla's ``RMSNorm`` and ``FusedRMSNormGated``. The torch functions below are the CPU path and the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refine.ops.fla import fla_symbols


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` in fp32, cast back to ``x.dtype``."""
    y = x.float() * torch.rsqrt(x.float().square().mean(dim=-1, keepdim=True) + eps)
    return (y if weight is None else y * weight.float()).to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Same as :func:`rms_norm_reference` through ``F.rms_norm`` (fused on CPU and CUDA)."""
    return F.rms_norm(x.float(), x.shape[-1:], None if weight is None else weight.float(), eps).to(x.dtype)


def gated_rms_norm(x: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """``rms_norm(x) * silu(gate)`` in fp32 (fla ``FusedRMSNormGated`` with activation 'swish')."""
    y = F.rms_norm(x.float(), x.shape[-1:], None if weight is None else weight.float(), eps)
    return (y * F.silu(gate.float())).to(x.dtype)


def fla_rms_norm(x: torch.Tensor, gate: torch.Tensor | None, weight: torch.Tensor | None, eps: float):
    """fla's Triton (gated) RMSNorm of ``x`` (CUDA), or None when fla does not import."""
    if gate is None:
        found = fla_symbols("fla.modules.norm.layernorm", "rms_norm")
        return None if found is None else found[0](x, weight, None, eps=eps)
    found = fla_symbols("fla.modules.norm.fused_norm_gate", "rms_norm_gated")
    return None if found is None else found[0](x, gate, weight, None, activation="swish", eps=eps)


class RMSNorm(nn.Module):
    """RMSNorm over the last dim with a ``weight`` parameter (fla's parameter name); optional swish output gate.
    ``fused``: fla's kernels on CUDA (see the module docstring)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, dtype: torch.dtype | None = None, fused: bool = False):
        super().__init__()
        self.eps, self.fused = eps, fused
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        if self.fused and x.is_cuda and (y := fla_rms_norm(x, gate, self.weight, self.eps)) is not None:
            return y
        if gate is None:
            return rms_norm(x, self.weight, self.eps)
        return gated_rms_norm(x, gate, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, fused={self.fused}"
