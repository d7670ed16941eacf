"""torchrun: REFINE mid-training with validation on 2 CPU processes, batch and mini-batch split over ranks."""

from __future__ import annotations

import json

import torch


def test_refine_runs_on_two_ranks_with_validation(toy, torchrun_mid, tmp_path):
    out = torchrun_mid(tmp_path / "refine", "refine", 2, "--val-data", str(toy["val"]))
    assert all(torch.isfinite(v).all() for v in out.values())
    rows = [json.loads(line) for line in (tmp_path / "refine" / "m.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(0, "val"), (1, "train"), (1, "val")]
    assert rows[1]["tokens"] == 4 * 64 and rows[1]["optimizer_steps"] == 2 and "reward_cosine_mean" in rows[2]
