"""The update rules every stage is built from: NTP/SFT with accumulation, REFINE, and NTP validation.

A batch is a dict of [B, T] tensors on this rank: `input_ids`, `attention_mask` and, for answer-only
SFT, `labels` (-100 outside the answer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from refine.models.base import ntp_targets
from refine.ops.linear_ce import IGNORE_INDEX
from refine.rl.config import RefineConfig
from refine.rl.step import refine_update
from refine.train.optim import OptimizerStep


def _rows(batch: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in batch.items()}


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    return int(batch["attention_mask"].sum())


def sft_update(
    model, batch: dict[str, torch.Tensor], micro: int, n_steps: int, opt: OptimizerStep, per_document: bool = False
) -> dict:
    """NTP cross-entropy (labels = `labels` or the input ids) in `n_steps` optimizer steps (spec 4.10).

    The rows split into `n_steps` contiguous mini-batches; each accumulates micro-batches of `micro` rows
    with loss = token-mean CE / #micro-batches, then takes one optimizer step. The official SFT baselines
    use n_steps = 1; `matched_steps` uses REFINE's number of mini-batches (spec 10.4). `per_document`: the
    mean over rows of each row's token-mean CE instead (every row counts once, however few targets it has).
    """
    device = next(model.parameters()).device
    rows = batch["input_ids"].shape[0]
    if rows % n_steps:
        raise ValueError(f"{rows} rows do not split into {n_steps} optimizer steps")
    size = rows // n_steps
    losses, norms, skipped = [], [], 0.0
    for start in range(0, rows, size):
        mini = _rows(batch, start, start + size)
        n_micro = -(-size // micro)
        for m in range(0, size, micro):
            part = {k: v.to(device) for k, v in _rows(mini, m, m + micro).items()}
            labels = part.get("labels", part["input_ids"])
            per_row = None
            if per_document:
                targets = (ntp_targets(labels, part["attention_mask"]) != IGNORE_INDEX).sum(dim=1)
                per_row = targets.clamp(min=1) * len(labels)
            loss = model(
                part["input_ids"], attention_mask=part["attention_mask"], labels=labels, num_items_in_batch=per_row
            ).loss
            opt.backward(loss / n_micro)
            losses.append(float(loss.detach()))
        out = opt.apply()
        norms.append(out["grad_norm"])
        skipped += out["skipped"]
    return {
        "loss": sum(losses) / len(losses),
        "grad_norm": sum(norms) / len(norms),
        "skipped_steps": skipped,
        "tokens": real_tokens(batch),
    }


def per_rank(cfg: RefineConfig, world: int) -> RefineConfig:
    """REFINE's mini-batch and slices count globally (spec 4.9); each rank takes its share (its contiguous shard
    of the batch holds `slices / world` slices)."""
    shares = {}
    for name in ("mini_batch_size", "slices"):
        value = getattr(cfg, name)
        if value is not None and value % world:
            raise ValueError(f"refine.{name} {value} does not split over {world} ranks")
        shares[name] = None if value is None else value // world
    return dataclasses.replace(cfg, **shares)


def refine_step(model, batch, cfg: RefineConfig, opt: OptimizerStep, generator: torch.Generator) -> dict:
    """One REFINE call (spec 4.1-4.9): NTP + GRPO rollouts, one optimizer step per mini-batch.

    Adds `reward`: the mean of the reward that drives the advantages (cfg.reward).
    """
    device = next(model.parameters()).device
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    out = refine_update(model, ids, mask, cfg, opt, generator)
    return {**out, "reward": out[f"reward_{cfg.reward}_mean"], "tokens": real_tokens(batch)}


@dataclass(frozen=True)
class TextUpdate:
    """The update on plain text (documents or prompts): `sft` = NTP only (spec 4.10) or `refine` (4.9).

    `refine` is this rank's REFINE config (`per_rank`). The SFT baseline takes one optimizer step per
    batch, or one per REFINE mini-batch when `matched_steps` (spec 10.4). Called with a `Trainer`, whose
    model, optimizer step, generator and micro-batch size it uses.
    """

    method: str
    refine: RefineConfig
    matched_steps: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("sft", "refine"):
            raise ValueError(f"unknown text-update method {self.method!r} (sft | refine)")

    def __call__(self, trainer, batch: dict[str, torch.Tensor]) -> dict:
        if self.method == "refine":
            return refine_step(trainer.model, batch, self.refine, trainer.opt, trainer.generator)
        mini = self.refine.mini_batch_size
        n_steps = -(-batch["input_ids"].shape[0] // mini) if self.matched_steps and mini else 1
        return sft_update(trainer.model, batch, trainer.cfg.micro_batch_size, n_steps, trainer.opt)


def nested_update(trainer, batch: dict[str, dict], inner: TextUpdate | None) -> dict:
    """One post-training step (spec 5.2) on `batch["prompt"]` (left-padded prompts) and `batch["answer"]`.

    With `inner` (nested_sft / nested_refine): the inner update on the prompt, then one answer-only SFT
    step with the updated weights (nothing is reverted); without (sft): the answer step alone. Inner
    metrics get an `inner_` prefix, except the rollout rewards (`reward`, `reward_*`).
    """
    metrics = {}
    if inner is not None:
        metrics = {k if k.startswith("reward") else f"inner_{k}": v for k, v in inner(trainer, batch["prompt"]).items()}
    outer = sft_update(trainer.model, batch["answer"], trainer.cfg.micro_batch_size, 1, trainer.opt)
    inner_tokens = metrics.pop("inner_tokens", 0)
    return {**metrics, **outer, "tokens": outer["tokens"] + inner_tokens}


@torch.no_grad()
def ntp_validation(model, batch: dict[str, torch.Tensor], micro: int, generator: torch.Generator) -> dict:
    """Sums for the NTP loss and sampled-token accuracy of spec 5.1 (eval mode).

    Accuracy: a token drawn from Categorical(softmax(logits)) at T = 1 (not argmax) equals the next token,
    over non-pad positions, last column excluded. Returns sums so callers can pool batches and ranks.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = hits = positions = 0.0
    n_micro = 0
    for m in range(0, batch["input_ids"].shape[0], micro):
        ids = batch["input_ids"][m : m + micro].to(device)
        mask = batch["attention_mask"][m : m + micro].to(device)
        out = model(ids, attention_mask=mask, labels=ids)
        probs = torch.softmax(out.logits[:, :-1].float(), dim=-1)
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(ids.shape[0], -1)
        real = mask[:, :-1].bool()
        hits += float(((drawn == ids[:, 1:]) & real).sum())
        positions += float(real.sum())
        loss_sum += float(out.loss)
        n_micro += 1
    model.train(was_training)
    return {"loss_sum": loss_sum, "micro_batches": float(n_micro), "hits": hits, "positions": positions}
