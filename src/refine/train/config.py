"""Stage configurations: one dataclass per `refine train --stage`, built from a `--cfg` mapping.

The workflow schema (`workflow/schemas/config.schema.yaml`) mirrors these fields. Defaults are the paper's
(spec section 6); the tiny replica overrides sizes and learning rates in its config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from refine.config import from_dict
from refine.evaluate.generation import GenerationConfig
from refine.rl.config import RefineConfig


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its schedule (spec 4.9: lr 1e-6, betas (0.9, 0.999), wd 0.01, constant LR, no warmup)."""

    lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # code default; the paper's table says 0.2 (spec 10.1)
    schedule: str = "constant"  # constant | cosine (cosine: tiny-base pretraining)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr


@dataclass(frozen=True)
class RunConfig:
    """Fields every stage shares: optimizer, per-rank micro-batch (spec 4.9: 2), threads and precision.

    The run fails when more than `max_skipped_fraction` of the last `skip_window` optimizer steps were
    skipped for non-finite gradients (refine.train.divergence).
    """

    optim: OptimConfig = field(default_factory=OptimConfig)
    micro_batch_size: int = 2
    threads: int = 0  # torch.set_num_threads; 0 = $REFINE_THREADS or torch's default
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    gradient_checkpointing: bool = False
    fused_linear_ce: bool = False  # sets the model config's fuse_linear_cross_entropy for this run (no [L, V] logits)
    strategy: str = "ddp"  # ddp (whole model per rank) | fsdp (FSDP2 shards; refine.train.distributed)
    max_skipped_fraction: float = 0.25
    skip_window: int = 20

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        """This stage's defaults with `data` applied (unknown keys rejected, naming them)."""
        return from_dict(cls, data)


@dataclass(frozen=True)
class StageConfig(RunConfig):
    """A training run over a dataset.

    `batch_size` counts sequences per training step, globally (split across ranks). `steps` = 0 means
    `epochs` full passes (drop_last). `save_every` = 0 saves the resumable state only at the end; the
    state is deleted once the outputs are written unless `keep_state`.
    Sequences are right-truncated and left-padded to exactly `max_length` (spec 3.1).
    """

    batch_size: int = 8
    max_length: int = 16384
    steps: int = 0
    epochs: int = 1
    save_every: int = 0
    keep_state: bool = False


@dataclass(frozen=True)
class PretrainConfig(StageConfig):
    """Tiny-base NTP pretraining from scratch, one corpus document per row (docs/design.md, "Retrieval first")."""

    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=0.1, schedule="cosine", warmup_steps=20)
    )
    batch_size: int = 16
    max_length: int = 512
    model: dict[str, Any] = field(default_factory=dict)  # overrides for refine.models.tiny.tiny_config


@dataclass(frozen=True)
class MidConfig(StageConfig):
    """Mid-training on long documents (spec 5.1): cosine reward, lambda_RL 0.2, batch 128, mini 32.

    `matched_steps` False is the official schedule (SFT: 1 optimizer step per batch; REFINE: one per
    mini-batch); True makes SFT step once per REFINE mini-batch too (spec 10.4). Likewise below.
    """

    refine: RefineConfig = field(
        default_factory=lambda: RefineConfig(reward="cosine", lambda_rl=0.2, mini_batch_size=32)
    )
    matched_steps: bool = False
    batch_size: int = 128
    val_every: int = 10
    val_before_train: bool = True
    val_batch_size: int = 32
    val_max_docs: int = 0  # 0 = all held-out documents
    val_rewards: bool = True  # also roll out on validation documents and log reward statistics


@dataclass(frozen=True)
class PostConfig(StageConfig):
    """Nested post-training per task x length (spec 5.2): hybrid reward, lambda_RL 0.2, batch 64, mini 16."""

    refine: RefineConfig = field(
        default_factory=lambda: RefineConfig(reward="hybrid", lambda_rl=0.2, mini_batch_size=16)
    )
    matched_steps: bool = False
    batch_size: int = 64
    max_length: int = 16352  # prompt length L - 32
    max_answer_length: int = 32

    def for_length(self, length: int) -> PostConfig:
        """Sized for a cell of `length` tokens: prompts get `length` minus the answer (spec 5.2: L - 32)."""
        return dataclasses.replace(self, max_length=length - self.max_answer_length)


@dataclass(frozen=True)
class TTTConfig(RunConfig):
    """Test-time training inside evaluation (spec 5.3): binary reward, lambda_RL 0.4, batches of 8, mini 4.

    `generation` is the evaluation's own config (batch 8, drop_last, greedy, 32 new tokens).
    """

    refine: RefineConfig = field(
        default_factory=lambda: RefineConfig(reward="binary", lambda_rl=0.4, mini_batch_size=4)
    )
    matched_steps: bool = False
    reset: str = "cumulative"  # cumulative (official, spec 10.3) | per_batch (restore weights + AdamW)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(max_prompt_length=16352))

    def for_length(self, length: int) -> TTTConfig:
        """Sized for a cell of `length` tokens: the evaluation's prompt budget (spec 5.3: L - 32)."""
        from refine.evaluate.cells import prompt_budget

        return dataclasses.replace(self, generation=prompt_budget(self.generation, length))


STAGE_CONFIGS = {"pretrain": PretrainConfig, "mid": MidConfig, "post": PostConfig, "ttt": TTTConfig}
