"""Training metrics: one JSON object per line (docs/design.md) and the progress shown, both on rank 0 only."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from refine.atomic import atomic_path, atomic_write_text
from refine.logs import Progress

log = logging.getLogger(__name__)


class MetricsLog:
    """Append rows to a JSONL file; on resume, rows after the restored step are dropped (they are redone).

    With a `work_dir` (the resumable state directory) rows go to `work_dir/metrics.jsonl` and `publish`
    copies them to `path` at the end: the declared output is deleted by Snakemake before a retried job
    runs, the state directory is not, so a resumed run keeps its earlier rows.
    """

    def __init__(self, path: Path | str | None, enabled: bool, work_dir: Path | str | None = None):
        self.final = Path(path) if path and enabled else None
        self.path = Path(work_dir) / "metrics.jsonl" if self.final and work_dir else self.final
        self.fields: dict[str, Any] = {}  # the run's identity, written into every row (refine.train.stages)

    def publish(self) -> None:
        """Copy the working log to its declared path atomically (nothing to do when they are one file)."""
        if self.final is None or self.path == self.final:
            return
        with atomic_path(self.final) as tmp:
            shutil.copyfile(self.path, tmp)

    def truncate_after(self, step: int) -> None:
        """Keep only rows with `step` <= step (a fresh run passes 0 and keeps nothing beyond step 0)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.path.read_text().splitlines() if self.path.exists() else []
        kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= step] if step else []
        atomic_write_text(self.path, "".join(r + "\n" for r in kept))  # a kill keeps the old rows or the new
        log.info("metrics: %s (one line per step, readable while the job runs; published to %s)", self.path, self.final)

    def write(self, row: dict[str, Any]) -> None:
        if self.path is None:
            return
        row = {**self.fields, **row}
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")


def progress(total: int, initial: int, desc: str, enabled: bool) -> Progress:
    """Training progress on rank 0: a tqdm bar on a terminal, else a log line with step/total, the `postfix`
    values (loss, reward, tok/s) and the ETA every total/20 steps or 5 minutes (`refine.logs.Progress`)."""
    return Progress(total, initial, desc, enabled, unit="step")


def postfix(row: dict[str, Any]) -> dict[str, str]:
    """The bar's short summary: loss, the optimised reward's mean (REFINE) and tokens/s."""
    shown = {"loss": row.get("loss"), "reward": row.get("reward"), "tok/s": row.get("tokens_per_s")}
    return {k: f"{v:.4g}" for k, v in shown.items() if isinstance(v, (int, float))}
