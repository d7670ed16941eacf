"""The REFINE objective: lambda_SFT * NTP + lambda_RL * PPO-clip (spec 4.9, ``core_algos.py:722-794``)."""

from __future__ import annotations

import torch

from refine.models.base import ntp_loss, ntp_targets
from refine.ops.linear_ce import IGNORE_INDEX


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


def ntp_divisors(input_ids: torch.Tensor, attention_mask: torch.Tensor, split: list[int] | None = None) -> torch.Tensor:
    """Per-row divisors ``[B]`` of the NTP term: the term is the sum over rows of each row's summed cross-entropy
    over its divisor (``ntp_loss(..., num_items=divisors)``): all rows' real-target count (``split`` None, the
    token mean), or, for consecutive row groups of sizes ``split``, the group's count times the number of groups
    (the mean of the groups' token means: the official micro-batch normalisation, ``dp_actor.py:806-818``)."""
    real = (ntp_targets(input_ids, attention_mask) != IGNORE_INDEX).sum(dim=1)
    groups = [real] if split is None else real.split(split)
    return torch.cat([g.sum().clamp(min=1).expand(len(g)) for g in groups]) * len(groups)


def ntp_term(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, split: list[int] | None = None
) -> torch.Tensor:
    """The NTP term of one optimizer step from full logits (see :func:`ntp_divisors`)."""
    return ntp_loss(logits, input_ids, attention_mask, ntp_divisors(input_ids, attention_mask, split))
