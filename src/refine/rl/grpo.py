"""GRPO outcome advantages (spec 4.8, ``core_algos.py:246-308``)."""

from __future__ import annotations

import torch


def group_ids(num_sequences: int, c: int, n: int, device: torch.device | None = None) -> torch.Tensor:
    """Group of each rollout in sequence-major order (row = (seq * c + chunk) * n + sample).

    n == 1: the c rollouts of one sequence share its uid; n > 1: each row gets a fresh uid and is repeated n
    times, so a group is the n rollouts of one position (``ray_trainer.py:342, 381, 418, 440-446``).
    """
    rows = torch.arange(num_sequences * c * n, device=device)
    return rows // c if n == 1 else rows // n


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(R - mean_g) / (std_g + eps)`` with the unbiased std; a singleton group uses mean 0, std 1. ``[N] -> [N]``."""
    rewards = rewards.float()
    mean = torch.zeros_like(rewards)
    std = torch.ones_like(rewards)
    for g in torch.unique(groups):
        members = groups == g
        if int(members.sum()) > 1:
            mean[members] = rewards[members].mean()
            std[members] = rewards[members].std(unbiased=True)
    return (rewards - mean) / (std + eps)
