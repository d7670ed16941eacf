"""Rewards (spec 4.7), GRPO advantages (4.8) and the clipped PPO objective (4.9) on hand-computed cases."""

import math

import pytest
import torch

from refine.rl.grpo import group_ids, grpo_advantages
from refine.rl.loss import ppo_clip_loss, refine_loss
from refine.rl.rewards import all_rewards, binary_reward, cosine_reward


def test_cosine_reward_is_per_position_then_mean_over_k():
    h_gt = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    h_pred = torch.tensor([[[3.0, 0.0], [1.0, 1.0]]])  # cos 1 and 1/sqrt(2)
    assert cosine_reward(h_pred, h_gt).item() == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    # pooling before the cosine would give a different number
    assert cosine_reward(h_pred, h_gt).item() != pytest.approx(
        torch.cosine_similarity(h_pred.mean(1), h_gt.mean(1)).item()
    )


def test_binary_and_hybrid_rewards():
    tokens = torch.tensor([[1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    gt = torch.tensor([[1, 2, 9, 4, 9], [0, 1, 1, 1, 1]])
    assert binary_reward(tokens, gt).tolist() == pytest.approx([0.6, 0.2])
    h = torch.randn(2, 5, 4)
    r = all_rewards(h, h, tokens, gt)
    assert r["cosine"].tolist() == pytest.approx([1.0, 1.0])
    assert r["hybrid"].tolist() == pytest.approx([1.6, 1.2])


def test_group_ids_follow_the_code():
    # n = 1: the c rollouts of one sequence; n > 1: the n rollouts of one position
    assert group_ids(2, 3, 1).tolist() == [0, 0, 0, 1, 1, 1]
    assert group_ids(1, 2, 3).tolist() == [0, 0, 0, 1, 1, 1]
    assert group_ids(2, 2, 2).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_grpo_uses_unbiased_std_and_eps():
    r = torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0])
    adv = grpo_advantages(r, torch.tensor([0, 0, 0, 1, 1]), eps=1e-6)
    # group 0: mean 2, unbiased std 1; group 1: std 0 -> (0) / (0 + eps)
    assert adv.tolist() == pytest.approx([-1 / (1 + 1e-6), 0.0, 1 / (1 + 1e-6), 0.0, 0.0])


def test_grpo_singleton_group_has_mean_zero_std_one():
    adv = grpo_advantages(torch.tensor([0.7, 1.0, 3.0]), torch.tensor([5, 6, 6]))
    assert adv[0].item() == pytest.approx(0.7 / (1 + 1e-6))


def _loss(logp, old, adv):
    return ppo_clip_loss(torch.tensor([logp]), torch.tensor([old]), torch.tensor(adv))


def test_ppo_unclipped_and_clipped_positive_advantage():
    # ratio 1.1 inside the band: -A * r; ratio e^0.5 ~ 1.65 clipped to 1.2: max(-1.65, -1.2) = -1.2
    loss, stats = _loss([math.log(1.1), 0.5], [0.0, 0.0], [1.0])
    assert loss.item() == pytest.approx((-1.1 - 1.2) / 2)
    assert stats["clip_frac"].item() == pytest.approx(0.5)


def test_ppo_negative_advantage_clip_and_dual_clip():
    # A = -1. ratio 0.5 -> max(0.5, 0.8) = 0.8 (clipped); ratio e^2 ~ 7.39 -> max(7.39, 1.2) = 7.39 > dual 3 -> 3
    loss, stats = _loss([math.log(0.5), 2.0], [0.0, 0.0], [-1.0])
    assert loss.item() == pytest.approx((0.8 + 3.0) / 2)
    assert stats["dual_clip_frac"].item() == pytest.approx(0.5)
    # the dual clip does not apply to A > 0: ratio e^2 with A = 1 -> max(-7.39, -1.2) = -1.2
    assert _loss([2.0], [0.0], [1.0])[0].item() == pytest.approx(-1.2)


def test_log_ratio_is_clamped_at_20():
    loss, _ = _loss([100.0], [0.0], [-1e-3])
    assert torch.isfinite(loss)
    logp = torch.tensor([[100.0]], requires_grad=True)
    ppo_clip_loss(logp, torch.zeros(1, 1), torch.tensor([1.0]), clip_ratio=1e9)[0].backward()
    assert logp.grad.item() == 0.0  # clamped: no gradient beyond +-20


def test_ppo_gradient_is_minus_advantage_at_ratio_one():
    logp = torch.zeros(2, 3, requires_grad=True)
    ppo_clip_loss(logp, torch.zeros(2, 3), torch.tensor([2.0, -1.0]))[0].backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-2 / 6] * 3 + [1 / 6] * 3)


def test_loss_weighting():
    assert refine_loss(torch.tensor(2.0), torch.tensor(-1.0), 1.0, 0.2).item() == pytest.approx(1.8)
    assert refine_loss(torch.tensor(2.0), torch.tensor(-1.0), 0.5, 0.4).item() == pytest.approx(0.6)
