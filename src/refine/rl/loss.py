"""The REFINE objective: lambda_SFT * NTP + lambda_RL * PPO-clip (spec 4.9, ``core_algos.py:722-794``)."""

from __future__ import annotations

import torch

from refine.models.base import ntp_loss


def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio: float = 0.2,
    dual_clip: float = 3.0,
    logratio_clamp: float = 20.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """verl's vanilla clipped surrogate, token mean over all rollout tokens (every rollout has exactly k tokens).

    ``logp, old_logp [N, k]``, ``advantages [N]`` (broadcast over the k tokens, spec 4.8). Per token:
    ratio = exp(clamp(logp - old, +-logratio_clamp)); L = max(-A r, -A clip(r, 1-eps, 1+eps));
    for A < 0 additionally min(L, -A * dual_clip). Returns the loss and detached stats (clip fractions, KL).
    """
    adv = advantages[:, None].expand_as(logp)
    log_ratio = (logp - old_logp).clamp(-logratio_clamp, logratio_clamp)
    ratio = log_ratio.exp()
    loss1 = -adv * ratio
    loss2 = -adv * ratio.clamp(1 - clip_ratio, 1 + clip_ratio)
    clipped = torch.maximum(loss1, loss2)
    loss3 = -adv * dual_clip
    per_token = torch.where(adv < 0, torch.minimum(clipped, loss3), clipped)
    stats = {
        "clip_frac": (loss2 > loss1).float().mean().detach(),
        "dual_clip_frac": ((clipped > loss3) & (adv < 0)).float().mean().detach(),
        "ppo_kl": (-log_ratio).mean().detach(),
    }
    return per_token.mean(), stats


def refine_loss(ntp: torch.Tensor, ppo: torch.Tensor, lambda_sft: float, lambda_rl: float) -> torch.Tensor:
    """``lambda_sft * ntp + lambda_rl * ppo``; no KL and no entropy term (spec 4.9)."""
    return lambda_sft * ntp + lambda_rl * ppo


def ntp_term(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, split: list[int] | None = None
) -> torch.Tensor:
    """The NTP term of one optimizer step: the token mean over all rows (``split`` None), or the mean over
    consecutive row groups of sizes ``split`` of each group's token mean: the official micro-batch
    normalisation (``dp_actor.py:806-818``: each micro-batch's mean CE / #micro-batches)."""
    if split is None:
        return ntp_loss(logits, input_ids, attention_mask)
    parts = zip(*(t.split(split) for t in (logits, input_ids, attention_mask)))
    return torch.stack([ntp_loss(*part) for part in parts]).mean()
