"""RULER NIAH through lm-evaluation-harness: local task YAMLs and glue (see `harness`)."""

from refine.evaluate.lmeval.harness import (
    collect_scores,
    load_hflm,
    render_niah_tasks,
    run_builtin_niah,
    run_niah,
)

__all__ = ["collect_scores", "load_hflm", "render_niah_tasks", "run_builtin_niah", "run_niah"]
