"""Causal depthwise short convolution (fla's ``ShortConvolution``, fla/modules/causal_conv1d/ops.py:1118).

``y[:, t, d] = act(sum_j w[d, 0, j] * x[:, t - W + 1 + j, d] (+ bias[d]))`` with zeros before the first token, or
the previous inputs held in a conv state, and ``act`` SiLU or identity.

Conv state layout (ours): ``[B, D, W - 1]`` = the last ``W - 1`` inputs, oldest first. (fla keeps ``[B, D, W]``,
the last W inputs including the current one; only W - 1 are needed to continue: its kernel reads columns 1..W-1
of the initial state, fla/modules/causal_conv1d/ops.py:129.)

With ``fused=True`` on CUDA, when fla imports, the module runs fla's Triton ``causal_conv1d`` (backend 'triton',
fla/modules/causal_conv1d/ops.py:996, the kernel of fla's ``ShortConvolution``); the torch functions below are
the CPU path and the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refine.ops.fla import fla_symbols

ACTIVATIONS = (None, "silu", "swish")


def _activate(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {activation!r}; expected one of {ACTIVATIONS}")
    return y if activation is None else F.silu(y)


def _with_history(x: torch.Tensor, width: int, state: torch.Tensor | None) -> torch.Tensor:
    """``[B, D, W - 1 + T]``: the conv state (zeros if None) followed by ``x [B, T, D]`` channel-first."""
    x = x.transpose(1, 2)
    if state is None:
        return F.pad(x, (width - 1, 0))
    return torch.cat([state.to(x.dtype), x], dim=2)


def short_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal depthwise conv of ``x [B, T, D]`` with ``weight [D, 1, W]`` (one ``F.conv1d`` call).

    Returns ``(y [B, T, D], new state [B, D, W - 1] or None)``; ``state`` continues a previous call.
    """
    width = weight.shape[-1]
    history = _with_history(x, width, state)
    y = F.conv1d(history, weight, bias, groups=weight.shape[0]).transpose(1, 2).contiguous()
    return _activate(y, activation), history[..., history.shape[-1] - width + 1 :] if output_final_state else None


def short_conv_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same as :func:`short_conv`, as an explicit sum over the W kernel taps."""
    width, length = weight.shape[-1], x.shape[1]
    history = _with_history(x, width, state)
    y = sum(weight[:, 0, j, None] * history[..., j : j + length] for j in range(width))
    if bias is not None:
        y = y + bias[:, None]
    return _activate(y.transpose(1, 2), activation), history[..., length:] if output_final_state else None


def fla_short_conv(x, weight, bias, activation, state, output_final_state):
    """:func:`short_conv` through fla's Triton ``causal_conv1d`` (CUDA), or None when fla does not import."""
    found = fla_symbols("fla.modules.causal_conv1d", "causal_conv1d")
    if found is None:
        return None
    initial = None if state is None else F.pad(state.to(x.dtype), (1, 0))  # ours -> fla's [B, D, W] layout
    y, final = found[0](
        x=x,
        weight=weight[:, 0],
        bias=bias,
        initial_state=initial,
        output_final_state=output_final_state,
        activation=activation,
        backend="triton",
    )
    return y, None if final is None else final[..., 1:]


class ShortConvolution(nn.Conv1d):
    """Depthwise causal conv layer with fla's parameter layout (``weight [D, 1, W]``, optional ``bias [D]``).
    ``fused``: fla's kernel on CUDA (see the module docstring)."""

    def __init__(
        self,
        hidden_size: int,
        kernel_size: int,
        bias: bool = False,
        activation: str | None = "silu",
        fused: bool = False,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unsupported activation {activation!r}; expected one of {ACTIVATIONS}")
        super().__init__(hidden_size, hidden_size, kernel_size, groups=hidden_size, bias=bias)
        self.activation, self.fused = activation, fused

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, output_final_state: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [B, T, D]`` -> ``(y [B, T, D], state [B, D, W - 1] or None)``."""
        args = (x, self.weight, self.bias, self.activation, state, output_final_state)
        if self.fused and x.is_cuda and (out := fla_short_conv(*args)) is not None:
            return out
        return short_conv(*args)
