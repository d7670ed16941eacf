"""The REFINE method (spec sections 1, 4, 6, 10): position selection, rollouts (recompute / snapshot engines),
rewards, GRPO advantages, the clipped policy loss and `refine_update`."""

from refine.rl.config import RefineConfig
from refine.rl.step import refine_update

__all__ = ["RefineConfig", "refine_update"]
