"""Atomic outputs: the HF checkpoint of a stage and the resumable training state (exact resume).

The state directory holds `step-{N}/` folders and a `latest` file naming the newest complete one. A
folder is written under a temporary name and renamed, then `latest` is replaced, so a run killed at any
moment leaves the previous state intact. Rank 0 writes the model and optimizer (identical on every
rank) into `train.pt`, or, with a sharded (FSDP2) model, every rank writes its shards of both through
torch.distributed.checkpoint into `shards/`; every rank writes its own RNG states, since ranks sample
rollouts from different streams.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from refine.atomic import atomic_path
from refine.train.distributed import Dist, is_sharded

log = logging.getLogger(__name__)


def full_weights(model) -> dict[str, torch.Tensor] | None:
    """The whole fp32 state dict of a sharded model, on CPU on rank 0 (empty elsewhere); None if unsharded.

    A collective under FSDP: every rank calls it.
    """
    if not is_sharded(model):
        return None
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_checkpoint(model, tokenizer, out: Path | str, weights: dict[str, torch.Tensor] | None = None) -> None:
    """The stage output: `save_pretrained` of model (safetensors + config) and tokenizer, atomically.

    `weights`: the state dict to write instead of the model's own (`full_weights` of a sharded model).
    """
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp, state_dict=weights)
        tokenizer.save_pretrained(tmp)


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random stream a step can touch: python, numpy, torch (CPU, CUDA) and the named generators."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


class TrainState:
    """Save and restore (model, optimizer, scheduler, step, RNG) under `root`; a no-op when root is None.

    A state records the `fingerprint` of the run that wrote it (config, inputs and code:
    refine.train.fingerprint); a run with another fingerprint removes it and starts fresh, so a changed
    config, base checkpoint, data or code never resumes stale weights.
    """

    def __init__(self, root: Path | str | None, dist: Dist, fingerprint: str = ""):
        self.root = Path(root) if root else None
        self.dist, self.fingerprint = dist, fingerprint

    def remove(self) -> None:
        """Delete the state directory (rank 0, between barriers): stale, or no longer needed."""
        self.dist.barrier()
        if self.root is not None and self.dist.main:
            shutil.rmtree(self.root, ignore_errors=True)
        self.dist.barrier()

    def latest(self) -> Path | None:
        if self.root is None or not (self.root / "latest").is_file():
            return None
        return self.root / (self.root / "latest").read_text().strip()

    def save(self, step: int, model, optimizer, scheduler, generators: dict[str, torch.Generator], **extra) -> None:
        """Write `step-{step}` (all ranks), then point `latest` at it and drop older states (rank 0)."""
        if self.root is None:
            return
        tmp = self.root / f".step-{step}.tmp"
        if self.dist.main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.dist.barrier()
        torch.save(rng_state(generators), tmp / f"rng-{self.dist.rank}.pt")
        sharded = is_sharded(model)
        if sharded:
            weights, moments = get_state_dict(model, optimizer)
            dcp.save({"model": weights, "optimizer": moments}, checkpoint_id=tmp / "shards")
        if self.dist.main:
            whole = {} if sharded else {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            torch.save(
                {
                    "step": step,
                    **whole,
                    "scheduler": scheduler.state_dict(),
                    "world": self.dist.world,
                    "fingerprint": self.fingerprint,
                    **extra,
                },
                tmp / "train.pt",
            )
        self.dist.barrier()
        if self.dist.main:
            final = self.root / f"step-{step}"
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            pointer = self.root / ".latest.tmp"
            pointer.write_text(final.name)
            os.replace(pointer, self.root / "latest")
            for old in self.root.glob("step-*"):
                if old != final:
                    shutil.rmtree(old)
        self.dist.barrier()

    def load(self, model, optimizer, scheduler, generators: dict[str, torch.Generator]) -> dict[str, Any] | None:
        """Restore the newest state in place; returns its `train.pt` dict (step, extras) or None."""
        path = self.latest()
        if path is None:
            return None
        train = torch.load(path / "train.pt", map_location="cpu", weights_only=False)
        if train["fingerprint"] != self.fingerprint:
            log.warning(
                "starting fresh: state %s was written by another run (config, inputs or code differ); removing it",
                path,
            )
            self.remove()
            return None
        if train["world"] != self.dist.world:
            raise ValueError(f"state {path} was saved with {train['world']} ranks, this run has {self.dist.world}")
        if is_sharded(model):
            weights, moments = get_state_dict(model, optimizer)  # this run's shards, filled in place
            shards = {"model": weights, "optimizer": moments}
            dcp.load(shards, checkpoint_id=path / "shards")
            set_state_dict(model, optimizer, model_state_dict=shards["model"], optim_state_dict=shards["optimizer"])
        else:
            model.load_state_dict(train["model"])
            optimizer.load_state_dict(train["optimizer"])
        scheduler.load_state_dict(train["scheduler"])
        set_rng_state(torch.load(path / f"rng-{self.dist.rank}.pt", weights_only=False), generators)
        return train
