"""Evaluation cells: one (task, length) of a model, its data file and record path, and the cell's budgets.

`refine evaluate` and test-time training (`refine train --stage ttt`) both run a model over a list of cells
and write one record per cell; the identity fields of those records come from `refine.experiment`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refine.evaluate.generation import GenerationConfig
from refine.experiment import TTT_MODES, parse_model, refine_fields


@dataclass(frozen=True)
class Cell:
    """One evaluation: a task at a length, its data file and its record path."""

    task: str
    length: int
    length_label: str
    data: str | None
    out: str


def make_cells(
    task: Sequence[str],
    length: Sequence[int],
    length_label: Sequence[str],
    data: Sequence[str] | None,
    out: Sequence[str],
) -> list[Cell]:
    """The cells of parallel lists, one value per `out` record; a one-element list is shared by every cell."""
    n = len(out)
    lists = {"task": task, "length": length, "length_label": length_label, "data": data or [None]}
    for name, values in lists.items():
        if len(values) not in (1, n):
            raise ValueError(f"--{name.replace('_', '-')}: {len(values)} values for {n} --out records (give 1 or {n})")
    return [Cell(out=o, **{k: v[i] if len(v) == n else v[0] for k, v in lists.items()}) for i, o in enumerate(out)]


def record_fields(
    *, experiment: str, arch: str, model: str, cell: Cell, family: str, ttt: str = "none", model_run=None, ttt_run=None
) -> dict[str, Any]:
    """The identity fields of a cell's record: the model's (`refine.experiment.ModelId.fields`), the REFINE
    settings it was trained with (`model_run`: its checkpoint's run info, None for base / SFT) and, for
    test-time training, the TTT's own (`ttt_run`: a RefineConfig, None for `ttt: none` / `sft`)."""
    if ttt not in TTT_MODES:
        raise ValueError(f"ttt {ttt!r} not in {TTT_MODES}")
    trained = model_run or {}
    return {
        "experiment": experiment,
        "arch": arch,
        **parse_model(model).fields(),
        **{k: trained.get(k) for k in refine_fields(None)},
        "family": family,
        "task": cell.task,
        "length": cell.length,
        "length_label": cell.length_label,
        "ttt": ttt,
        **refine_fields(ttt_run, prefix="ttt_refine_"),
    }


def prompt_budget(cfg: GenerationConfig, length: int) -> GenerationConfig:
    """The generation config of a cell: prompts get `length` minus the generated tokens (spec 5.3: L - 32)."""
    return dataclasses.replace(cfg, max_prompt_length=length - cfg.max_new_tokens)
