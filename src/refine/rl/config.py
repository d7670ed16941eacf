"""`RefineConfig`: the hyper-parameters of one REFINE update (spec sections 4 and 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refine.config import from_dict

SAMPLINGS = ("entropy", "uniform", "argmax", "argmin")  # spec 4.2-4.3, Table 7 ablations
REWARDS = ("cosine", "binary", "hybrid")  # spec 4.7
ROLLOUTS = ("snapshot", "recompute")  # docs/design.md; recompute = the official structure (spec 4.4-4.6)


@dataclass(frozen=True)
class RefineConfig:
    """One REFINE update; defaults are the paper's mid-training values (spec section 6).

    `mini_batch_size` counts sequences per optimizer step (the code's `ttt_ppo_mini_batch_size`, spec 4.9);
    None puts the whole batch in one step. Two switches reproduce the official batch arithmetic (spec 4.9) where
    the project's defaults differ:

    * `slices`: the official GPU count. The code shards the batch contiguously over its GPUs and each takes its
      mini-batches in order, so optimizer step j holds the j-th block of `mini_batch_size / slices` sequences of
      every slice. None: each rank's sequences in contiguous blocks (the same when the job runs on that many
      ranks; `refine.train.updates.per_rank` turns both into a per-rank count).
    * `ntp_micro_batch`: sequences per NTP micro-batch (the code's `ttt_micro_batch_size_per_gpu`, 2); the NTP
      term is then the mean of the micro-batch token means, the micro-batches cut within each slice's block
      (`dp_actor.py:806-818`). None: the token mean over the optimizer step's sequences.
    """

    c: int = 8  # chunks per sequence (`ttt_n_chunks`)
    k: int = 5  # rollout length (`ttt_response_length`)
    n: int = 1  # rollouts per selected position (`ttt_n`)
    sampling: str = "entropy"
    reward: str = "cosine"
    margin: int = 20  # rollout starts clamped to [first real + margin, L - margin] (spec 4.3)
    temperature: float = 1.0  # rollout sampling and log-prob temperature (spec 4.5-4.6)
    lambda_sft: float = 1.0
    lambda_rl: float = 0.2
    clip_ratio: float = 0.2  # PPO epsilon (spec 4.9)
    dual_clip: float = 3.0  # dual-clip constant for A < 0 (spec 4.9)
    logratio_clamp: float = 20.0  # |logp - old_logp| clamp before exp (spec 4.9)
    adv_eps: float = 1e-6  # GRPO std epsilon (spec 4.8)
    mini_batch_size: int | None = None
    rollout: str = "snapshot"
    slices: int | None = None
    ntp_micro_batch: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("sampling", SAMPLINGS), ("reward", REWARDS), ("rollout", ROLLOUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"RefineConfig.{name}: {getattr(self, name)!r} is not one of {allowed}")
        for name in ("c", "k", "n"):
            if getattr(self, name) < 1:
                raise ValueError(f"RefineConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("mini_batch_size", "slices", "ntp_micro_batch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"RefineConfig.{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.k > self.margin:
            raise ValueError(f"RefineConfig.k={self.k} exceeds margin={self.margin}: rollouts would run past L")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RefineConfig:
        """Build from a mapping; unknown keys raise ValueError naming them."""
        return from_dict(cls, data)
