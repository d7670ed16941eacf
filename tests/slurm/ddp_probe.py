"""One data-parallel training step of a small nn.Linear, for the local-SLURM test (launched by torchrun).

Usage: torchrun --standalone --nproc_per_node=N ddp_probe.py OUT.json

Each rank builds the same model (seed 0), takes its own batch (seed 100 + rank), runs one DDP SGD step with
gloo (CPU; the fake GPUs of the test cluster are not real), then all ranks compare weights. Rank 0 also
redoes the step by hand from every rank's batch (mean of the per-rank gradients, as DDP computes) and writes
OUT.json with the world size, the weight disagreement across ranks, the error against the hand-made step,
and what SLURM/torchrun put in each rank's environment.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

LR = 0.1
ENV_KEYS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "SLURM_JOB_GPUS",
    "SLURM_GPUS_ON_NODE",
)


def batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)


def new_model() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(8, 4)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = new_model()
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=LR)
    x, y = batch(rank)
    loss = torch.nn.functional.mse_loss(ddp(x), y)
    loss.backward()
    opt.step()

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    envs: list = [None] * world
    dist.all_gather_object(envs, {k: os.environ.get(k) for k in ENV_KEYS})

    if rank == 0:
        # The same step by hand: the mean over ranks of each rank's gradient.
        ref = new_model()
        init = torch.cat([p.detach().reshape(-1) for p in ref.parameters()])
        grads = []
        for r in range(world):
            ref.zero_grad()
            xr, yr = batch(r)
            torch.nn.functional.mse_loss(ref(xr), yr).backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in ref.parameters()]))
        expected = init - LR * torch.stack(grads).mean(0)
        result = {
            "world_size": world,
            "max_weight_diff_across_ranks": max((t - gathered[0]).abs().max().item() for t in gathered),
            "max_error_vs_reference_step": (flat - expected).abs().max().item(),
            "weight_change": (flat - init).abs().max().item(),
            "loss_rank0": loss.item(),
            "ranks": envs,
        }
        with open(out, "w") as fh:
            json.dump(result, fh, indent=1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
