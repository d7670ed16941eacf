"""The LM head fused with its consumers, in token chunks: cross-entropy and entropy of ``hidden @ weight^T`` without
materialising the ``[N, V]`` logits (at 16K tokens and V = 32000 the fp32 logits alone take 2 GiB).

* :func:`linear_cross_entropy` - summed NTP cross-entropy. On CUDA fla's ``fused_linear_cross_entropy_loss``
  (fla/modules/fused_linear_cross_entropy/ops.py) when fla imports; else :class:`ChunkedLinearCrossEntropy`, the
  same scheme in torch: per chunk of tokens the logits, the loss and the gradients of hidden and weight are
  computed in the forward (fla's and Liger's scheme), so the backward only scales them and neither pass holds
  more than one chunk of logits.
* :func:`linear_entropy` - per-token entropy of ``softmax(hidden @ weight^T)``, chunk by chunk.
"""

from __future__ import annotations

import torch

from refine.ops.fla import fla_symbols

#: tokens per chunk of logits in the torch path (fp32 logits of a chunk: CHUNK_TOKENS * V * 4 bytes, 128 MiB at
#: V = 32000)
CHUNK_TOKENS = 1024
#: the label (and target) of a position without one: torch's ``cross_entropy`` default and Hugging Face's convention;
#: every module that masks a label imports it from here
IGNORE_INDEX = -100


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp(z) - sum softmax(z) * z`` over the last dim, fp32 (ReFINE ``utils/torch_functional.py:145-149``)."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (logits.softmax(dim=-1) * logits).sum(dim=-1)


def linear_entropy(hidden: torch.Tensor, weight: torch.Tensor, chunk_tokens: int | None = None) -> torch.Tensor:
    """Entropy ``[...]`` of the logits ``hidden [..., d] @ weight [V, d]^T``, one chunk of tokens at a time
    (``chunk_tokens``, default :data:`CHUNK_TOKENS`)."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    parts = [entropy_from_logits(chunk @ weight.T) for chunk in flat.split(chunk_tokens or CHUNK_TOKENS)]
    return torch.cat(parts).reshape(hidden.shape[:-1]) if parts else flat.new_zeros(hidden.shape[:-1]).float()


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """``sum_i CE(hidden_i @ weight^T, targets_i)`` (fp32), gradients computed in the forward; every target a class
    index (:func:`linear_cross_entropy` drops the ignored rows first)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int):
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        d_hidden = torch.empty_like(hidden) if need_hidden else None
        d_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        for start in range(0, hidden.shape[0], chunk_tokens):
            x, target = hidden[start : start + chunk_tokens], targets[start : start + chunk_tokens]
            logits = (x @ weight.T).float()
            index = target[:, None]
            lse = logits.logsumexp(dim=-1)
            loss += (lse - logits.gather(-1, index)[:, 0]).sum()
            if need_hidden or need_weight:
                grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                grad.scatter_add_(-1, index, -torch.ones_like(index, dtype=grad.dtype))
                if need_hidden:
                    d_hidden[start : start + chunk_tokens] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
                if need_weight:
                    d_weight.addmm_(grad.T, x.float())
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(d_hidden, d_weight)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        d_hidden, d_weight = ctx.saved_tensors
        if d_hidden is not None:
            d_hidden = d_hidden * grad_loss.to(d_hidden.dtype)
        if d_weight is not None:
            d_weight = (d_weight * grad_loss).to(ctx.weight_dtype)
        return d_hidden, d_weight, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int | None = None
) -> torch.Tensor:
    """Summed cross-entropy (fp32 scalar) of ``hidden [N, d] @ weight [V, d]^T`` against ``targets [N]``
    (:data:`IGNORE_INDEX` ignored), never holding more than a chunk of logits (``chunk_tokens``, default
    :data:`CHUNK_TOKENS`, torch path). fla's kernel on CUDA when it imports. Rows without a target are dropped first:
    they add nothing, and where the loss is on answers alone (post-training's prompts, padding, the tiny pretraining's
    needle documents) they are most of the head's work."""
    keep = targets != IGNORE_INDEX
    if not bool(keep.all()):
        hidden, targets = hidden[keep], targets[keep]
    fused = (
        fla_symbols("fla.modules.fused_linear_cross_entropy", "fused_linear_cross_entropy_loss")
        if hidden.is_cuda and len(targets)
        else None
    )
    if fused is not None:
        return fused[0](hidden, targets, weight, ignore_index=IGNORE_INDEX, reduction="sum")
    return ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_tokens or CHUNK_TOKENS)
