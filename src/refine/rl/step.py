"""`refine_update`: one REFINE inner-loop call on a batch of sequences (spec 1, 4.1-4.9, 11 "Core step")."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from itertools import accumulate

import torch

from refine.rl.config import RefineConfig
from refine.rl.grpo import grpo_advantages
from refine.rl.loss import ppo_clip_loss, refine_loss
from refine.rl.rewards import all_rewards
from refine.rl.rollout import ENGINES, Rollouts, collect_rollouts, rollout_rows
from refine.rl.scan import Scan, scan
from refine.rl.selection import select_positions


def refine_update(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    cfg: RefineConfig,
    optimizer_step: Callable[[torch.Tensor], dict],
    generator: torch.Generator,
) -> dict[str, float]:
    """Scan, select, roll out, reward and standardise with the pre-update policy (eval mode), then one
    ``optimizer_step(lambda_sft * NTP + lambda_rl * PPO)`` per mini-batch of ``cfg.mini_batch_size`` sequences
    with their own rollouts, in order, in train mode (spec 4.9: no shuffling, one pass; later mini-batches are
    slightly off-policy). The first mini-batch's branches are built with gradient before any update, so they
    serve both its sampling and its update forward (the models have no dropout, so eval mode changes nothing);
    later mini-batches build theirs again under the updated weights.

    ``mini_batch_size`` and ``slices`` count the sequences and slices of this call (a distributed trainer passes
    its per-rank share of the code's global values); the steps take their sequences as ``step_layout`` says, and
    the batch is reordered by it first, so positions and rollouts are drawn in that order. ``generator`` lives on
    the model's device; it draws the positions and the rollouts.

    Normalisation: NTP is the token mean over the mini-batch's real tokens, or with ``cfg.ntp_micro_batch`` the
    code's mean of micro-batch means (spec 4.9; the two agree when the sequences have equal real lengths, as in
    mid-training). PPO is the token mean over the rollout tokens, which the code's micro-batch means equal (k
    tokens each).
    Returns float metrics (rewards of every kind, advantages, clipping, selected entropy, losses, the means of
    ``optimizer_step``'s values, throughput).
    """
    start_time = time.perf_counter()
    engine = ENGINES[cfg.rollout]
    order, steps = step_layout(input_ids.shape[0], cfg.mini_batch_size or input_ids.shape[0], cfg.slices or 1)
    if order != list(range(len(order))):
        input_ids, attention_mask = input_ids[order], attention_mask[order]
    bounds = [0, *accumulate(sum(sizes) for sizes in steps)]
    blocks = [slice(first, stop) for first, stop in zip(bounds, bounds[1:])]
    splits = [_micro_split(sizes, cfg.ntp_micro_batch) for sizes in steps]
    was_training = model.training
    model.eval()
    found = Scan.cat([scan(model, input_ids[block], attention_mask[block]) for block in blocks])
    positions = select_positions(found.entropy, attention_mask, cfg.c, cfg.k, cfg.sampling, cfg.margin, generator)
    per_seq = cfg.c * cfg.n  # rollout rows per sequence (sequence-major)

    def branch(index: int):
        block = blocks[index]
        ids, mask = input_ids[block], attention_mask[block]
        return engine.branch(model, ids, mask, *rollout_rows(positions[block], cfg.n), ntp_split=splits[index])

    branches = []
    for index in range(len(blocks)):
        with torch.set_grad_enabled(torch.is_grad_enabled() and index == 0):
            model.train(torch.is_grad_enabled())  # a graph for the update: train mode, where checkpointing acts
            branches.append(branch(index))
    model.eval()
    rollouts = collect_rollouts(engine, model, input_ids, attention_mask, positions, found, cfg, generator, branches)
    del branches[1:]  # the later mini-batches branch again under the updated weights
    rewards = all_rewards(rollouts.h_pred, rollouts.h_gt, rollouts.tokens, rollouts.gt_ids)
    advantages = grpo_advantages(rewards[cfg.reward], rollouts.groups, cfg.adv_eps)
    metrics = _rollout_metrics(rewards, advantages, found.entropy, rollouts)
    metrics["rollout_time_s"] = time.perf_counter() - start_time

    model.train()
    sums = defaultdict(float)
    for index, block in enumerate(blocks):
        rows = slice(block.start * per_seq, block.stop * per_seq)
        batch = rollouts.select(rows)
        current = branches.pop() if index == 0 else branch(index)
        ntp, logp = engine.forward(model, current, batch.tokens, cfg.temperature)
        ppo, stats = ppo_clip_loss(
            logp, batch.old_logp, advantages[rows], cfg.clip_ratio, cfg.dual_clip, cfg.logratio_clamp
        )
        loss = refine_loss(ntp, ppo, cfg.lambda_sft, cfg.lambda_rl)
        stats.update(ntp_loss=ntp.detach(), ppo_loss=ppo.detach(), loss=loss.detach())
        stats.update(optimizer_step(loss))
        for name, value in stats.items():
            sums[name] += float(value)
    model.train(was_training)

    metrics.update({name: total / len(blocks) for name, total in sums.items()})
    elapsed = time.perf_counter() - start_time
    tokens_per_s = float(attention_mask.sum()) / elapsed
    metrics.update(optimizer_steps=float(len(blocks)), time_s=elapsed, tokens_per_s=tokens_per_s)
    return metrics


def step_layout(num_seq: int, size: int, slices: int = 1) -> tuple[list[int], list[list[int]]]:
    """``(order, steps)``: the sequences of one call in optimizer-step order, and for each step the sizes of its
    slices' blocks (``order`` is consecutive within each).

    The call's ``num_seq`` sequences form ``slices`` equal contiguous slices (verl's ``DP_COMPUTE_PROTO``
    sharding over GPUs), each cut into blocks of ``size / slices`` (``DataProto.split``); step j takes the j-th
    block of every slice (spec 4.9). ``slices=1``: contiguous blocks of ``size``.
    """
    if num_seq % slices or size % slices:
        raise ValueError(f"{num_seq} sequences and mini-batches of {size} do not split into {slices} slices")
    per_slice, block = num_seq // slices, size // slices
    order, steps = [], []
    for first in range(0, per_slice, block):
        rows = [range(s * per_slice + first, s * per_slice + min(first + block, per_slice)) for s in range(slices)]
        order += [row for part in rows for row in part]
        steps.append([len(part) for part in rows])
    return order, steps


def _micro_split(sizes: list[int], micro: int | None) -> list[int] | None:
    """Micro-batch sizes of one step: each slice's block cut into runs of ``micro`` (None: no split)."""
    if micro is None:
        return None
    return [min(micro, size - first) for size in sizes for first in range(0, size, micro)]


def _rollout_metrics(rewards: dict, advantages: torch.Tensor, entropy: torch.Tensor, rollouts: Rollouts) -> dict:
    """Reward mean/std of every kind (spec 4.7), advantage stats and the entropy of the selected predictions."""
    metrics = {}
    for kind, values in rewards.items():
        metrics[f"reward_{kind}_mean"] = float(values.mean())
        metrics[f"reward_{kind}_std"] = float(values.std()) if values.numel() > 1 else 0.0
    metrics.update(
        advantage_mean=float(advantages.mean()),
        advantage_std=float(advantages.std()) if advantages.numel() > 1 else 0.0,
        advantage_min=float(advantages.min()),
        advantage_max=float(advantages.max()),
        selected_entropy_mean=float(entropy[rollouts.seq_index, rollouts.positions - 1].mean()),
    )
    return metrics
