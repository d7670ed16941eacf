"""Per-rollout rewards (spec 4.7, ``ray_trainer.py:293-328``): one scalar per rollout, the mean over k positions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_reward(h_pred: torch.Tensor, h_gt: torch.Tensor) -> torch.Tensor:
    """R^phi: cosine over the hidden dim at each of the k positions, then the mean over k; ``[N, k, d] -> [N]``."""
    return F.cosine_similarity(h_pred.float(), h_gt.float(), dim=-1).mean(dim=-1)


def binary_reward(tokens: torch.Tensor, gt_ids: torch.Tensor) -> torch.Tensor:
    """R^binary: the fraction of the k rollout tokens equal to the ground truth; ``[N, k] -> [N]``."""
    return (tokens == gt_ids).float().mean(dim=-1)


def all_rewards(h_pred: torch.Tensor, h_gt: torch.Tensor, tokens: torch.Tensor, gt_ids: torch.Tensor) -> dict:
    """``{"cosine", "binary", "hybrid"}`` (hybrid = cosine + binary); all three are always logged (spec 4.7)."""
    cosine, binary = cosine_reward(h_pred, h_gt), binary_reward(tokens, gt_ids)
    return {"cosine": cosine, "binary": binary, "hybrid": cosine + binary}
