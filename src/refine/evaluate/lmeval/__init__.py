"""lm-evaluation-harness glue and local task YAMLs: RULER NIAH (`harness`), Table E.1's short-context suite
(`short`)."""

from refine.evaluate.lmeval.harness import (
    collect_scores,
    load_hflm,
    render_niah_tasks,
    run_builtin_niah,
    run_niah,
)
from refine.evaluate.lmeval.short import ShortConfig, run_short

__all__ = [
    "collect_scores",
    "load_hflm",
    "render_niah_tasks",
    "run_builtin_niah",
    "run_niah",
    "run_short",
    "ShortConfig",
]
