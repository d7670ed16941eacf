"""The training loop shared by every stage: seeded data order, AdamW, precision, metrics, exact resume."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from refine.config import set_threads
from refine.train.config import RunConfig, StageConfig
from refine.train.distributed import STRATEGIES, Dist, shard_model
from refine.train.divergence import DivergenceGuard, check_finite_weights
from refine.train.fingerprint import fingerprint
from refine.train.metrics import MetricsLog, postfix, progress
from refine.train.optim import OptimizerStep, build_optimizer, build_scheduler
from refine.train.state import TrainState

log = logging.getLogger(__name__)

SUMMED = ("tokens", "skipped_steps")  # metrics added over ranks; all others are averaged


@dataclass(frozen=True)
class BatchPlan:
    """The dataset indices of each step's global batch: a seeded permutation per epoch, drop_last.

    The permutation of epoch e comes from a generator seeded with (seed, e), so the data position is a
    function of the step and a resumed run reads exactly the batches it would have read.
    """

    n_items: int
    batch_size: int
    steps: int
    seed: int
    shuffle: bool = True

    @classmethod
    def for_stage(cls, n_items: int, cfg: StageConfig, seed: int, shuffle: bool = True) -> BatchPlan:
        """`cfg.steps` steps, or `cfg.epochs` passes when steps = 0."""
        if n_items < cfg.batch_size:
            raise ValueError(f"{n_items} examples are fewer than one batch of {cfg.batch_size}")
        return cls(n_items, cfg.batch_size, cfg.steps or cfg.epochs * (n_items // cfg.batch_size), seed, shuffle)

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.n_items // self.batch_size)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n_items, generator=g)
        else:
            order = torch.arange(self.n_items)
        return order[k * self.batch_size : (k + 1) * self.batch_size].tolist()


class Trainer:
    """Owns the model's optimizer, schedule, RNG and state for one run on this rank.

    The model keeps fp32 (master) weights; `autocast()` gives the bf16 forward on GPU (spec 4.9). With
    `strategy: fsdp` and several ranks the model is sharded (FSDP2, `refine.train.distributed.shard_model`)
    before the optimizer is built; one process always trains it whole.
    `generator` drives every sampling the update does (rollouts); it is per rank and part of the state.
    """

    def __init__(
        self,
        model,
        cfg: RunConfig,
        dist: Dist,
        *,
        seed: int,
        total_steps: int,
        metrics: Path | str | None = None,
        state: Path | str | None = None,
        desc: str = "train",
        inputs: Mapping[str, Path | str | None] | None = None,
    ):
        set_threads(cfg.threads)
        self.cfg, self.dist, self.seed, self.total_steps, self.desc = cfg, dist, seed, total_steps, desc
        self.model = model.to(dist.device)
        self.model.train()
        if cfg.gradient_checkpointing:
            if getattr(model, "supports_gradient_checkpointing", False):
                model.gradient_checkpointing_enable()
            else:
                log.warning("%s does not support gradient checkpointing; running without", type(model).__name__)
        if cfg.fused_linear_ce:  # the training forward returns the loss without [B, L, V] logits (models/base.py)
            model.config.fuse_linear_cross_entropy = True
        precision = cfg.precision if cfg.precision != "auto" else ("bf16" if dist.device.type == "cuda" else "fp32")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision: unknown {cfg.precision!r} (auto | fp32 | bf16)")
        self.bf16 = precision == "bf16"
        if cfg.strategy not in STRATEGIES:
            raise ValueError(f"strategy: unknown {cfg.strategy!r} ({' | '.join(STRATEGIES)})")
        if cfg.strategy == "fsdp" and dist.world > 1:
            self.model = shard_model(self.model, dist, self.bf16)
        self.optimizer = build_optimizer(model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, total_steps)
        self.opt = OptimizerStep(model, self.optimizer, cfg.optim.grad_clip, dist)
        self.generator = torch.Generator(device=dist.device).manual_seed(seed * 1000 + dist.rank)
        self.state = TrainState(state, dist, fingerprint(cfg, desc, seed, inputs) if state else "")
        self.metrics = MetricsLog(metrics, dist.main, state)
        self.guard = DivergenceGuard(cfg.max_skipped_fraction, cfg.skip_window, verbose=dist.main)
        self.step = 0

    def autocast(self):
        """bf16 autocast around forwards when configured; weights and optimizer stay fp32."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16)

    def validation_generator(self) -> torch.Generator:
        """A fresh stream per validation (seeded by step), so validating never shifts training's RNG."""
        return torch.Generator(device=self.dist.device).manual_seed(
            (self.seed * 1000 + self.dist.rank) * 100_003 + self.step
        )

    def resume(self) -> int:
        """Restore the newest saved state if any; returns the step to continue from."""
        saved = self.state.load(self.model, self.optimizer, self.scheduler, {"rollout": self.generator})
        self.step = saved["step"] if saved else 0
        self.opt.taken, self.opt.skipped = (saved["opt_taken"], saved["opt_skipped"]) if saved else (0, 0)
        self.guard.load_state_dict(saved.get("divergence") if saved else None)
        if saved:
            log.info("resumed from %s at step %d", self.state.latest(), self.step)
        self.metrics.truncate_after(self.step)
        return self.step

    def save_state(self) -> None:
        """Save the resumable state; non-finite weights fail the run instead (DivergenceError)."""
        check_finite_weights(self.model, self.dist)
        self.state.save(
            self.step,
            self.model,
            self.optimizer,
            self.scheduler,
            {"rollout": self.generator},
            opt_taken=self.opt.taken,
            opt_skipped=self.opt.skipped,
            divergence=self.guard.state_dict(),
        )

    def reduce(self, row: dict[str, float]) -> dict[str, float]:
        """Metrics pooled over ranks: sums for `SUMMED` keys, means otherwise (same keys on every rank)."""
        keys = sorted(row)
        totals = self.dist.all_sum([float(row[k]) for k in keys])
        return {k: v if k in SUMMED else v / self.dist.world for k, v in zip(keys, totals)}

    def log_row(self, split: str, row: dict[str, float]) -> dict:
        full = {"step": self.step, "split": split, **row}
        self.metrics.write(full)
        return full

    def _validate(self, validate: Callable[[torch.Generator], dict]) -> None:
        with self.autocast():
            self.log_row("val", validate(self.validation_generator()))

    def fit(
        self,
        plan: BatchPlan,
        make_batch: Callable[[list[int]], dict],
        update: Callable[[dict], dict],
        validate: Callable[[torch.Generator], dict] | None = None,
        val_every: int = 0,
        val_before: bool = False,
        save_every: int = 0,
    ) -> None:
        """Run steps from the resumed one to `plan.steps`.

        Per step: this rank's shard of the plan's global batch -> `make_batch` -> `update` (under autocast,
        returns metrics incl. `tokens`) -> LR schedule step -> a train row; `validate` every `val_every`
        steps (and at step 0 if `val_before`) writes a val row; the state is saved every `save_every` steps
        and at the end.
        """
        start = self.resume()
        if validate and val_before and start == 0:
            self._validate(validate)
        bar = progress(plan.steps, start, self.desc, self.dist.main)
        for _ in range(start, plan.steps):
            batch = make_batch(self.dist.shard(plan.indices(self.step)))
            began = time.perf_counter()
            lr = self.scheduler.get_last_lr()[0]
            taken, skipped = self.opt.taken, self.opt.skipped
            with self.autocast(), self.guard.diagnose(self.step + 1):
                out = update(batch)
            self.scheduler.step()
            self.step += 1
            out["seconds"] = time.perf_counter() - began
            row = self.reduce(out)
            row["tokens_per_s"] = row["tokens"] / max(row["seconds"], 1e-9)
            row["lr"] = lr
            row["skipped_total"] = float(self.opt.skipped)  # grads are identical on every rank
            # applied and skipped optimizer steps of this training step (the update's own counts are attempts)
            self.guard.record(self.step, self.opt.taken - taken, self.opt.skipped - skipped, row)
            bar.set_postfix(postfix(self.log_row("train", row)))  # before update: a progress line shows this step
            bar.update(1)
            self.guard.check(self.step)
            if validate and val_every and self.step % val_every == 0:
                self._validate(validate)
            if (save_every and self.step % save_every == 0) or self.step == plan.steps:
                self.save_state()
        bar.close()
        self.guard.finish(self.step)
        self.metrics.publish()
