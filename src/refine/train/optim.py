"""AdamW, its LR schedule, and the one optimizer-step function every update path calls (spec 4.9)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch.distributed.tensor import DTensor

from refine.train.config import OptimConfig
from refine.train.distributed import Dist, hold_gradients, is_sharded, reduce_gradients


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over all trainable parameters (spec 4.9: fp32 master weights, decoupled weight decay)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """Constant LR (spec 4.9), optionally with linear warmup and a cosine decay to `min_lr_ratio`."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule != "cosine":
            raise ValueError(f"optim.schedule: unknown {cfg.schedule!r} (constant | cosine)")
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class OptimizerStep:
    """`step(loss)`: backward, average gradients over ranks, clip the norm, AdamW step, zero the grads.

    With a sharded (FSDP2) model, backward accumulates unreduced gradients and `apply` averages them over
    ranks into the shards; the norm is that of the whole gradient (the shards' norms combined), so clipping
    matches `ddp`'s.

    A non-finite gradient norm (e.g. from a NaN loss) skips the update, so nothing non-finite reaches the
    weights or the AdamW moments; `skipped` counts such steps and `taken` the applied ones. `backward` and
    `apply` are the two halves, for gradient accumulation over micro-batches.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float, dist: Dist):
        self.model, self.optimizer, self.grad_clip, self.dist = model, optimizer, grad_clip, dist
        self.taken = 0
        self.skipped = 0

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (outside autocast: backward runs in the forward's dtypes)."""
        device_type = loss.device.type
        ctx = torch.autocast(device_type, enabled=False) if device_type in ("cuda", "cpu") else nullcontext()
        if is_sharded(self.model):
            hold_gradients(self.model)
        with ctx:
            loss.backward()

    def apply(self) -> dict[str, float]:
        """Reduce, clip and apply the accumulated gradients; returns the pre-clip grad norm."""
        if is_sharded(self.model):
            reduce_gradients(self.model)  # and reshards: the step changes the shards, the next forward regathers
        else:
            self.dist.average_gradients([p for p in self.model.parameters() if p.requires_grad])
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        finite = bool(torch.isfinite(norm))
        if finite:
            self.optimizer.step()
            self.taken += 1
        else:
            self.skipped += 1
        self.optimizer.zero_grad(set_to_none=True)
        return {"grad_norm": float(norm), "skipped": float(not finite)}

    def __call__(self, loss: torch.Tensor) -> dict[str, float]:
        self.backward(loss)
        return self.apply()
