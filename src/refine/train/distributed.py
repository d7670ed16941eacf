"""torchrun support: one code path for 1..N processes, two strategies (`RunConfig.strategy`).

Each rank takes a contiguous shard of the global batch (verl's DP_COMPUTE_PROTO, spec 4.9).
- `ddp`: every rank holds the whole model and the gradients are averaged over ranks before clipping, which
  is what DDP computes. Averaging explicitly, instead of wrapping the model in DistributedDataParallel,
  keeps `model.generate` and the REFINE rollout forwards (several forwards per backward) working unchanged.
- `fsdp`: torch's FSDP2 (`fully_shard`) per block and at the root; weights, gradients and AdamW moments are
  sharded over ranks, each module all-gathers its weights when it runs and reduce-scatters (averages) its
  gradients in backward. Every rank must then run the same sequence of forwards (see `refine.rl.rollout.segment_ends`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

STRATEGIES = ("ddp", "fsdp")


@dataclass
class Dist:
    """This process's place in the job: rank, world size and the device it computes on."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence):
        """This rank's contiguous slice of a global batch (its length must divide by the world size)."""
        if len(items) % self.world:
            raise ValueError(f"global batch of {len(items)} does not split over {self.world} ranks")
        size = len(items) // self.world
        return items[self.rank * size : (self.rank + 1) * size]

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Mean of each parameter's gradient over ranks, in one flat all-reduce (missing grads count as 0)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
            offset += g.numel()

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of a list of floats over ranks (float64, so counts stay exact)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        tdist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()


def shard_model(model: torch.nn.Module, dist: Dist, bf16: bool) -> torch.nn.Module:
    """FSDP2 over all ranks: `fully_shard` each block (the model's `_no_split_modules` classes), then the root.

    bf16: weights all-gathered in bf16 for compute, fp32 sharded master weights, gradients reduced in fp32;
    else fp32 throughout. Weights stay gathered from a module's first forward until `reshard` (called after
    every optimizer step), so the scan, rollout and decode forwards of a step gather each block once.
    """
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(dist.device.type, (dist.world,))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(model).__name__}: no `_no_split_modules` blocks to shard")
    for module in [*blocks, model]:
        fully_shard(module, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    model.set_reshard_after_backward(False)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def reshard(model: torch.nn.Module) -> None:
    """Free the gathered weights of every FSDP module (the next forward gathers the current shards)."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def hold_gradients(model: torch.nn.Module) -> None:
    """Before a backward of a sharded model: accumulate the gradients locally, unreduced (`reduce_gradients`).

    A sharded module reduce-scatters in the backward of each of its uses, so a snapshot trunk of S segments
    would communicate S times per step; held gradients are reduced once per optimizer step, like `ddp`'s.
    """
    model.set_requires_gradient_sync(False)


def reduce_gradients(model: torch.nn.Module) -> None:
    """Reduce-scatter (average over ranks) the gradients held since the last step into the shards, then reshard.

    FSDP2 reduces in backward only, so this runs a zero-weighted backward of a one-token forward with sync on:
    every module adds exact zeros to what it holds and reduce-scatters the sum.
    """
    model.set_requires_gradient_sync(True)
    token = torch.zeros(1, 1, dtype=torch.long, device=next(model.parameters()).device)
    (model(token).logits.sum() * 0).backward()
    reshard(model)


def init_distributed() -> Dist:
    """Join the torchrun job if launched by torchrun (gloo on CPU, nccl on CUDA); else a 1-process Dist."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=int(os.environ.get("RANK", "0")), world=world, device=device)


def close_distributed() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()
