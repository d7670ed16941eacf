"""Loud divergence: a skipped optimizer step is logged, too many fail the run, non-finite weights are never saved.

An optimizer step is skipped when its gradient norm is non-finite (`refine.train.optim.OptimizerStep`).
Skipping keeps the weights finite for a rare overflow, but a run that keeps skipping has diverged: it must
fail before publishing anything rather than ship the weights it stopped updating.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

_NON_FINITE = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)  # torch's messages about non-finite values


class DivergenceError(ValueError):
    """Training diverged under this configuration (e.g. too high a learning rate); the run publishes nothing.
    A ValueError, so `refine` reports it as one line and exits 2."""


def non_finite(row: dict) -> list[str]:
    """The metric names whose value is a non-finite float (the visible cause of a skipped step)."""
    return sorted(k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v))


class DivergenceGuard:
    """Counts applied and skipped optimizer steps over the last `window` ones and fails the run when more
    than `max_fraction * window` of them were skipped (at the end of the run: more than `max_fraction` of
    the steps in the window so far, so short runs are judged too). Its history is part of the train state.
    """

    def __init__(self, max_fraction: float, window: int, verbose: bool = True):
        self.max_fraction, self.window, self.verbose = max_fraction, window, verbose
        self.recent: list[int] = []  # 1 = skipped, 0 = applied; the last `window` optimizer steps

    def record(self, step: int, applied: int, skipped: int, row: dict) -> dict:
        """Account training step `step`'s optimizer steps: `row` (its metrics, which name the cause of a skip)
        gets `optimizer_steps` (applied) and `skipped_steps`; a skip is logged. Returns `row`; `check` judges."""
        row["optimizer_steps"], row["skipped_steps"] = applied, skipped
        if skipped and self.verbose:
            cause = ", ".join(non_finite(row)) or "none of the logged metrics"
            log.warning(
                "step %d: %d of %d optimizer steps skipped: non-finite gradient norm (non-finite: %s)",
                step,
                skipped,
                applied + skipped,
                cause,
            )
        self.recent = (self.recent + [0] * applied + [1] * skipped)[-self.window :]
        return row

    def check(self, step: int) -> None:
        """Fail (DivergenceError) when more than `max_fraction * window` of the window's steps were skipped."""
        self._check(step, self.max_fraction * self.window)

    def finish(self, step: int) -> None:
        """The end-of-run check over the steps the window holds (fewer than `window` in a short run)."""
        self._check(step, self.max_fraction * len(self.recent))

    def _check(self, step: int, limit: float) -> None:
        skipped = sum(self.recent)
        if skipped > limit:
            raise DivergenceError(
                f"training diverged at step {step}: {skipped} of the last {len(self.recent)} optimizer steps "
                f"were skipped (non-finite gradients), more than max_skipped_fraction {self.max_fraction} allows; "
                "nothing was published (lower optim.lr or check the data)"
            )

    @contextlib.contextmanager
    def diagnose(self, step: int) -> Iterator[None]:
        """Around an update: an error about non-finite values raised inside it (e.g. sampling from NaN
        probabilities after the weights blew up) becomes a DivergenceError naming the step."""
        try:
            yield
        except RuntimeError as err:
            if not _NON_FINITE.search(str(err)):
                raise
            raise DivergenceError(
                f"training diverged at step {step}: the update met non-finite values ({err}); "
                "nothing was published (lower optim.lr or check the data)"
            ) from err

    def state_dict(self) -> dict:
        return {"recent": list(self.recent)}

    def load_state_dict(self, state: dict | None) -> None:
        self.recent = list(state["recent"]) if state else []


def check_finite_weights(model: torch.nn.Module, dist) -> None:
    """Raise DivergenceError if any parameter holds a NaN or an infinity (on any rank's shard)."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(_local(p.detach())).all())]
    if dist.all_sum([float(len(bad))])[0]:
        where = f": {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else "") if bad else " (on another rank)"
        raise DivergenceError(f"training diverged: non-finite weights{where}; nothing was saved or published")


def _local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a sharded (DTensor) parameter, else the tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t
