"""RMSNorm computed in fp32 like fla's Triton kernels (fla/modules/norm/layernorm.py:906-927, ``rms_norm_ref``
with ``upcast=True``), plus the output-gated variant (fla/modules/norm/fused_norm_gate.py:101-104, swish gate)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


class RMSNorm(nn.Module):
    """RMSNorm over the last dim with a ``weight`` parameter (fla's parameter name); optional swish output gate."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, dtype: torch.dtype | None = None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype))

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        if gate is None:
            return rms_norm(x, self.weight, self.eps)
        return gated_rms_norm(x, gate, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
